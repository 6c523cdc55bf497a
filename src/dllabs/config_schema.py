"""The check of a composed config before any work starts: :func:`validate_config`.

Nothing here restates a constructor: every node with a ``_target_`` is checked against the signature of that
target (:mod:`dllabs.signature_check`: types, choices and ranges declared once, on the constructor). What needs the
whole config is checked here, in one place:

- keys: a top-level key is one of the command's own config file (``conf/<command>.yaml``) or a config group, so a
  key nothing reads (``+foo=bar``, ``+optimzer.lr=0.1``) is refused; ``callbacks``/``logger`` entries are objects;
- numbers: none is NaN or infinite (``1e400`` reads as infinite), no integer needs more than 64 bits; no ``???``;
- the top-level keys' types (:class:`TopLevel`, the keys no constructor takes);
- the ranges the libraries behind a group do not declare (``conf/limits.yaml``);
- a training run trains (``trainer.max_epochs`` >= 1) and monitors a metric its task or a callback logs
  (``logged_metrics`` of their classes);
- the library objects that are cheap to build are built once (:mod:`dllabs.dry_build`): the ``Trainer``, the
  optimiser, peft's ``LoraConfig``, so their own checks speak now.

Each problem is one :class:`~dllabs.errors.ConfigError` line naming the key, the value and what is allowed, e.g.
``data.batch_size=-1: must be an integer >= 1``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types as at
import pydantic
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
from pydantic import ConfigDict, TypeAdapter

from dllabs import dry_build
from dllabs.errors import ConfigError
from dllabs.resolvers import register_resolvers
from dllabs.signature_check import check_arguments, describe, nearest, shown, signature_of, unwrap

CONF_DIR = Path(os.environ.get("DLLABS_CONF_DIR", Path(__file__).resolve().parents[2] / "conf"))
LIMITS = "limits.yaml"
_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
_INT64 = 2**63 - 1
_OBJECT_GROUPS = ("callbacks", "logger")  # mappings of name -> object to build (or null to drop one)


class TopLevel(pydantic.BaseModel):
    """Types of the top-level keys of the commands' configs (``train``, ``eval``, ``predict``, ``analyze``,
    ``generate``): the keys that are no constructor's argument. Which keys exist is each config file's say."""

    model_config = ConfigDict(strict=True, extra="ignore")

    task_name: str = None
    seed: Annotated[int, at.Ge(0), at.Le(2**32 - 1)] | None = None
    ckpt_path: str | None = None
    train: bool = None
    test: bool = None
    optimized_metric: str = None
    monitor_mode: Literal["min", "max"] = None
    compile: bool = None
    channels_last: bool = None
    run_dir: str | None = None
    split: Literal["test", "val"] = None
    run_overrides: list[str] = None
    ckpt: str | None = None
    input: str | None = None
    text: str | None = None
    output: str | None = None
    input_shape: list[Annotated[int, at.Ge(1)]] | None = None
    input_dtype: Literal["float32", "long"] | None = None
    histograms: bool = None
    zero_biases: bool = None
    tensorboard: bool = None


class _Unresolved(Exception):
    """A value that cannot be resolved yet (``${hydra:runtime.output_dir}`` before Hydra has set up the job)."""


def _plain(node: DictConfig | ListConfig, key: Any) -> Any:
    try:
        child = node[key]
    except MissingMandatoryValue:
        raise
    except OmegaConfBaseException as err:
        raise _Unresolved from err
    if isinstance(child, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(child, resolve=True)
        except OmegaConfBaseException as err:
            raise _Unresolved from err
    return child


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _leaves(node: DictConfig | ListConfig, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf outside ``hydra``; unresolvable values are left out."""
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        if not path and key == "hydra":
            continue
        where = _join(path, key)
        child = node._get_node(key)
        if child._is_missing():
            raise ConfigError(f"{where} has no value (???): give {where}=<value>")
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            yield from _leaves(node[key], where)
            continue
        try:
            yield where, _plain(node, key)
        except _Unresolved:
            continue


def _typed_text(cfg: DictConfig) -> dict[str, str]:
    """The text of each command-line override, by key (``optimizer.lr`` -> ``1e400``), to show what was typed."""
    typed = {}
    for text in OmegaConf.select(cfg, "hydra.overrides.task", default=None) or []:
        key, sep, value = str(text).lstrip("+~").partition("=")
        if sep:
            typed[key] = value
    return typed


def _check_numbers(cfg: DictConfig) -> None:
    typed = _typed_text(cfg)
    for key, value in _leaves(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            written = typed.get(key, shown(value))
            raise ConfigError(f"{key}={written}: must be a finite number" + (
                f" ({written} is beyond a float's range)" if written.lower() not in ("nan", "inf", "-inf", "+inf")
                and written != shown(value) else ""))
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64:
            raise ConfigError(f"{key}={value}: too large; an integer here must be at most {_INT64:,} in size")


def _config_file_keys(command: str) -> set[str] | None:
    path = CONF_DIR / f"{command}.yaml"
    if not path.is_file():
        return None
    own = OmegaConf.load(path)
    keys = {str(key) for key in own if key != "defaults"}
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    return keys | groups | {"hydra"}


def _check_top_level(cfg: DictConfig) -> None:
    command = OmegaConf.select(cfg, "hydra.job.config_name", default=None)
    known = _config_file_keys(command) if command else None
    if known is not None:
        for key in cfg:
            if key not in known:
                raise _unread_key(cfg, str(key), known)
    values = {}
    for key in TopLevel.model_fields:
        if key in cfg:
            try:
                values[key] = _plain(cfg, key)
            except _Unresolved:
                continue
    try:
        TopLevel.model_validate(values)
    except pydantic.ValidationError as err:
        key = err.errors()[0]["loc"][0]
        raise ConfigError(f"{key}={shown(values[key])}: must be {describe(TopLevel.model_fields[key].annotation)}") \
            from None
    _check_cpu_precision(cfg)
    for group in _OBJECT_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        for name in node:
            child = node._get_node(name)
            if not child._is_none() and not (isinstance(child, DictConfig) and "_target_" in child):
                raise ConfigError(
                    f"{group}.{name}={shown(_plain(node, name))}: an entry of {group} is an object to build "
                    f"(with a _target_) or null to drop one"
                )


def _unread_key(cfg: DictConfig, key: str, known: set[str]) -> ConfigError:
    """A top-level key nothing reads (``+foo=bar``, ``+optimzer.lr=0.1``), as it was typed, with the nearest key."""
    for typed_key, value in _typed_text(cfg).items():
        if typed_key == key or typed_key.startswith(f"{key}."):
            rest = typed_key[len(key):]
            close = nearest(key, sorted(known))
            suggestion = f" (did you mean {close.removeprefix(' (did you mean ').removesuffix('?)')}{rest}?)" \
                if close else ""
            return ConfigError(f"{typed_key}={value}: no such key, nothing reads it{suggestion}")
    node = cfg._get_node(key)
    text = shown(OmegaConf.to_container(node) if isinstance(node, (DictConfig, ListConfig)) else node)
    return ConfigError(f"{key}={text}: no such key, nothing reads it{nearest(key, sorted(known))}")


def _check_cpu_precision(cfg: DictConfig) -> None:
    """``cpu_precision``: auto, or one of the precisions of Lightning's own ``Trainer`` signature."""
    if "cpu_precision" not in cfg:
        return
    trainer = signature_of("lightning.Trainer")
    allowed = Literal["auto"] | trainer.annotations["precision"] if trainer else Any
    value = _plain(cfg, "cpu_precision")
    if value is None or not _fits(allowed, [value]):
        raise ConfigError(f"cpu_precision={shown(value)}: must be {describe(allowed).removeprefix('null or ')}")


def _instantiable_nodes(node: DictConfig | ListConfig, path: str = "") -> list[tuple[str, DictConfig, str]]:
    """(path, node, target) of every node that names a ``_target_`` (``hydra`` left out)."""
    found = []
    if isinstance(node, DictConfig) and isinstance(node.get("_target_"), str):
        found.append((path, node, node.get("_target_")))
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        if key in _HYDRA_KEYS or (not path and key == "hydra"):
            continue
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_missing() and not child._is_none():
            found.extend(_instantiable_nodes(node[key], _join(path, key)))
    return found


def _is_object(child: Any) -> bool:
    if isinstance(child, DictConfig):
        return not child._is_none() and "_target_" in child
    if isinstance(child, ListConfig) and not child._is_none() and len(child):
        return all(isinstance(item, DictConfig) and "_target_" in item for item in child)
    return False


def _arguments(node: DictConfig) -> dict[str, Any]:
    """The node's arguments as its target gets them; nested objects (checked on their own) and unresolvable
    values left out."""
    values = {}
    for key in node:
        if key in _HYDRA_KEYS or _is_object(node._get_node(key)):
            continue
        try:
            values[str(key)] = _plain(node, key)
        except _Unresolved:
            continue
    return values


@functools.lru_cache(maxsize=1)
def _limits() -> dict[str, dict[str, dict[str, Any]]]:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / LIMITS))


def _bounded(bounds: dict[str, Any], kind: type = float) -> Any:
    return Annotated[(kind, *(getattr(at, name.capitalize())(bound) for name, bound in bounds.items()))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_limits(cfg: DictConfig) -> None:
    for group, limits in _limits().items():
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        for key, bounds in limits.items():
            if key not in node:
                continue
            value = _plain(node, key)
            items = bounds.get("items")
            if items is not None:
                if isinstance(value, list) and not _fits(_bounded(items), value):
                    raise ConfigError(f"{group}.{key}={shown(value)}: every item must be "
                                      f"{describe(_bounded(items)).removeprefix('a number ')}")
            elif value is not None and (not _is_number(value) or not _fits(_bounded(bounds), [value])):
                signature = signature_of(node.get("_target_")) if "_target_" in node else None
                declared = signature.annotations.get(key) if signature else None
                is_int = unwrap(declared) is int if declared is not None else isinstance(value, int)  # no target: as given
                kind = int if is_int else float
                raise ConfigError(f"{group}.{key}={shown(value)}: must be {describe(_bounded(bounds, kind))}")


def _fits(tp: Any, values: list[Any]) -> bool:
    adapter = TypeAdapter(tp)
    try:
        for value in values:
            adapter.validate_python(value)
    except pydantic.ValidationError:
        return False
    return True


def _logged_metrics(cfg: DictConfig) -> set[str] | None:
    """What the task and the callbacks say they log; None when the task does not say."""
    task = cfg.get("model")
    target = task.get("_target_") if isinstance(task, DictConfig) else None
    if not target:
        return None
    try:
        declared = getattr(get_object(target), "logged_metrics", None)
    except Exception:  # noqa: BLE001
        return None
    if declared is None:
        return None
    metrics = set(declared)
    callbacks = cfg.get("callbacks")
    for child in (callbacks.values() if isinstance(callbacks, DictConfig) else []):
        if isinstance(child, DictConfig) and "_target_" in child:
            try:
                target = get_object(child._target_)
            except Exception:  # noqa: BLE001 - a missing optional package is reported when the object is built
                target = None
            metrics |= set(getattr(target, "logged_metrics", ()))
    return metrics


def _check_training(cfg: DictConfig) -> None:
    if not cfg.get("train") or not isinstance(cfg.get("trainer"), DictConfig):
        return
    if cfg.trainer.get("max_epochs") == 0 or cfg.trainer.get("max_steps") == 0:
        key = "max_epochs" if cfg.trainer.get("max_epochs") == 0 else "max_steps"
        raise ConfigError(f"trainer.{key}=0: a training run needs at least 1 (or train=false to only test a "
                          "checkpoint)")
    metric = cfg.get("optimized_metric")
    logged = _logged_metrics(cfg)
    if metric and logged is not None and metric not in logged:
        fit = sorted(m for m in logged if not m.startswith("test/"))
        raise ConfigError(f"optimized_metric={metric}: not a metric this run logs{nearest(metric, fit)}; "
                          f"one of {', '.join(fit)}")


def _check_objects(cfg: DictConfig) -> None:
    for path, node, target in _instantiable_nodes(cfg):
        check_arguments(_arguments(node), target, path)
    finetune = cfg.get("finetune")
    if isinstance(finetune, DictConfig) and finetune.get("method") == "lora":
        check_arguments(dry_build.lora_arguments(_arguments(finetune)), "peft.LoraConfig", "finetune")


def _runs_elsewhere(cfg: DictConfig) -> bool:
    """Jobs submitted to a cluster (hydra/launcher=slurm) run on other machines: this one's devices say nothing."""
    return str(OmegaConf.select(cfg, "hydra.launcher._target_", default="")).endswith("SlurmLauncher")


def _dry_builds(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer")
    if isinstance(trainer, DictConfig) and "_target_" in trainer and not _runs_elsewhere(cfg):
        dry_build.dry_build(trainer, "trainer", dry_build.build_trainer, dry_build.trainer_hint)
    optimizer = cfg.get("optimizer")
    if isinstance(optimizer, DictConfig) and "_target_" in optimizer:
        dry_build.dry_build(optimizer, "optimizer", dry_build.build_optimizer)
    finetune = cfg.get("finetune")
    if isinstance(finetune, DictConfig) and finetune.get("method") == "lora":
        dry_build.dry_build(finetune, "finetune", dry_build.build_lora_config)


def validate_config(cfg: DictConfig) -> None:
    """Check a composed config; raise :class:`ConfigError` (one line) on the first problem."""
    register_resolvers()
    _check_numbers(cfg)
    _check_top_level(cfg)
    _check_limits(cfg)
    _check_objects(cfg)
    _check_training(cfg)
    _dry_builds(cfg)

