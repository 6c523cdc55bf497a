"""Types, choices and ranges of every config value, declared once and checked before any work starts.

Each config node that builds an object (it has a ``_target_``) is checked against the schema registered for that
target, so every option of a group that builds the same class (``sgd`` and a lab's ``sgd_*`` variant, say) is
covered without listing options. A schema is a dataclass read by OmegaConf (``OmegaConf.structured``): field types
give the types (an ``Enum`` gives the choices), field metadata the ranges. Keys a target does not accept are
caught from its signature. The top-level keys (``seed``, ``ckpt_path``, ``monitor_mode``, ...) have their own schema.

:func:`validate_config` raises :class:`~dllabs.errors.ConfigError` with one line naming the key, the value and
what is allowed, e.g. ``data.batch_size=-1: must be an integer >= 1``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from dllabs.errors import ConfigError

# Hydra's own keys of an instantiable node
_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
SCHEMAS: dict[str, type] = {}


def schema(*targets: str):
    """Register a dataclass as the schema of the nodes whose ``_target_`` is one of ``targets``."""

    def register(cls: type) -> type:
        cls = dataclass(cls)
        for target in targets:
            SCHEMAS[target] = cls
        return cls

    return register


def _bounded(**bounds: float) -> Any:
    """A required field with bounds: ``ge``/``gt`` (lower), ``le``/``lt`` (upper), ``each`` for list items."""
    return field(default=MISSING, metadata=bounds)


def _rule(check: str) -> Any:
    """A required field with a named extra check (see ``_CHECKS``)."""
    return field(default=MISSING, metadata={"check": check})


def at_least(bound: float) -> Any:
    return _bounded(ge=bound)


def positive() -> Any:
    return _bounded(gt=0)


def fraction() -> Any:
    """In [0, 1) (dropout, label smoothing, ...)."""
    return _bounded(ge=0, lt=1)


# ---- choices ---------------------------------------------------------------------------------------------------
class MonitorMode(Enum):
    min = "min"
    max = "max"


class Split(Enum):
    test = "test"
    val = "val"


class Augment(Enum):
    none = "none"
    crop_flip = "crop_flip"


class Loader(Enum):
    standard = "standard"
    device = "device"


class Norm(Enum):
    none = "none"
    batchnorm = "batchnorm"


class Activation(Enum):
    relu = "relu"
    swish = "swish"


class Shortcut(Enum):
    A = "A"
    B = "B"


class Pooling(Enum):
    last = "last"
    max = "max"
    mean = "mean"


class Protocol(Enum):
    lab = "lab"
    dynamic = "dynamic"
    packed = "packed"


class WikiTextSource(Enum):
    auto = "auto"
    files = "files"
    saved = "saved"
    hub = "hub"


class IMDBSource(Enum):
    auto = "auto"
    csv = "csv"
    aclimdb = "aclimdb"
    archive = "archive"


class MSE(Enum):
    mean = "mean"
    half_mean = "half_mean"


class LSTMInit(Enum):
    default = "default"
    template = "template"


class DType(Enum):
    float32 = "float32"
    float64 = "float64"
    float16 = "float16"
    bfloat16 = "bfloat16"
    auto = "auto"


# ---- the top level ---------------------------------------------------------------------------------------------
@dataclass
class TopLevel:
    """Keys of ``train.yaml`` (and of ``eval``/``predict``/``analyze``, which share some of them)."""

    task_name: str = MISSING
    seed: int = MISSING
    ckpt_path: str | None = MISSING
    train: bool = MISSING
    test: bool = MISSING
    optimized_metric: str = MISSING
    monitor_mode: MonitorMode = MISSING
    compile: bool = MISSING
    channels_last: bool = MISSING
    run_dir: str | None = MISSING
    split: Split = MISSING
    run_overrides: list[str] = MISSING


# ---- data --------------------------------------------------------------------------------------------------------
@schema("dllabs.data.cifar10.CIFAR10DataModule")
class CIFAR10Data:
    data_dir: str = MISSING
    batch_size: int = at_least(1)
    eval_batch_size: int = at_least(1)
    val_size: int = at_least(1)
    train_subset: int | None = at_least(1)
    split_seed: int = MISSING
    augment: Augment = MISSING
    loader: Loader = MISSING
    device: str = MISSING
    channels_last: bool = MISSING
    num_workers: int = at_least(0)
    pin_memory: bool = MISSING
    download: bool = MISSING
    seed: int = MISSING


@schema("dllabs.data.imdb.IMDBDataModule")
class IMDBData:
    data_dir: str = MISSING
    batch_size: int = at_least(1)
    eval_batch_size: int | None = at_least(1)
    max_length: int | None = at_least(1)
    min_freq: int = at_least(1)
    max_vocab_size: int = at_least(3)
    split: list[float] = _rule("split_fractions")
    split_seed: int = MISSING
    seed: int = MISSING
    source: IMDBSource = MISSING
    download: bool = MISSING
    cache_dir: str | None = MISSING
    num_workers: int = at_least(0)
    pin_memory: bool = MISSING


@schema("dllabs.data.lms.LMSDataModule")
class LMSData:
    data_dir: str = MISSING
    path: str | None = MISSING
    num_samples: int = at_least(2)
    noise_std: float = at_least(0)
    true_weights: list[float] = MISSING
    seed: int = MISSING
    val_size: int = at_least(0)
    shuffle: bool = MISSING
    add_bias: Any = _rule("add_bias")
    target_column: str = MISSING
    num_workers: int = at_least(0)


@schema("dllabs.data.wikitext.WikiTextDataModule")
class WikiTextData:
    data_dir: str = MISSING
    tokenizer: str | None = MISSING
    protocol: Protocol = MISSING
    block_size: int = at_least(2)
    fraction: float = _bounded(gt=0, le=1)
    batch_size: int = at_least(1)
    eval_batch_size: int | None = at_least(1)
    num_workers: int = at_least(0)
    source: WikiTextSource = MISSING
    subdir: str = MISSING
    hub_name: str = MISSING
    hub_config: str = MISSING
    splits: dict[str, str] | None = _rule("split_roles")
    local_files_only: bool = MISSING
    pin_memory: bool = MISSING


# ---- tasks (model) -----------------------------------------------------------------------------------------------
@schema("dllabs.tasks.classification.ClassificationTask")
class ClassificationTask:
    num_classes: int = at_least(2)
    label_smoothing: float = fraction()
    tta_flip: bool = MISSING


@schema("dllabs.tasks.regression.RegressionTask")
class RegressionTask:
    mse: MSE = MISSING


@dataclass
class Generation:
    """Generation settings; null keeps the default of ``generation.GenerationSettings``."""

    max_new_tokens: int | None = at_least(1)
    max_length: int | None = at_least(1)
    do_sample: bool | None = MISSING
    temperature: float | None = positive()
    top_k: int | None = at_least(0)
    top_p: float | None = _bounded(gt=0, le=1)
    repetition_penalty: float | None = positive()
    num_return_sequences: int | None = at_least(1)
    seed: int | None = MISSING


@schema("dllabs.tasks.language_model.LanguageModelTask")
class LanguageModelTask:
    lab_perplexity: bool = MISSING


# ---- nets (model.net) --------------------------------------------------------------------------------------------
@schema("dllabs.nets.simplenn.SimpleNN")
class SimpleNN:
    num_classes: int = at_least(1)
    norm: Norm = MISSING
    activation: Activation = MISSING


@schema("dllabs.nets.simplenn3.SimpleNN3")
class SimpleNN3:
    num_classes: int = at_least(1)
    in_channels: int = at_least(1)
    input_size: int = at_least(16)
    hidden: int = at_least(1)
    conv_bias: bool = MISSING
    builtin_layers: bool = MISSING
    relu_on_logits: bool = MISSING


@schema("dllabs.nets.resnet.ResNet")
class ResNet:
    depth: int = _rule("resnet_depth")
    shortcut: Shortcut = MISSING
    num_classes: int = at_least(1)
    in_channels: int = at_least(1)
    width: int = at_least(1)


@schema("dllabs.nets.lstm.LSTMClassifier")
class LSTMClassifier:
    vocab_size: int = at_least(3)
    embedding_dim: int = at_least(1)
    hidden_size: int = at_least(1)
    num_layers: int = at_least(1)
    bidirectional: bool = MISSING
    dropout: float = fraction()
    num_classes: int = at_least(1)
    pooling: Pooling = MISSING
    padding_idx: int = at_least(0)
    embedding_init_std: float | None = positive()
    init: LSTMInit = MISSING


@schema("dllabs.nets.causal_lm.causal_lm")
class CausalLM:
    pretrained: str | None = _rule("local_folder")
    dtype: DType | None = MISSING
    local_files_only: bool = MISSING


# ---- callbacks that take lab settings -----------------------------------------------------------------------------
@schema("dllabs.callbacks.perplexity.PerplexityRecord")
class PerplexityRecord:
    before_fit: bool = MISSING
    sliding_stride: int | None = at_least(1)
    sliding_window: int | None = at_least(2)


@schema("dllabs.callbacks.text_samples.TextSamples")
class TextSamples:
    prompts: list[str] = MISSING
    generation: Generation = MISSING
    before: bool = MISSING


@schema("dllabs.callbacks.lms.LMSReport")
class LMSReport:
    figures: bool = MISSING


@schema("dllabs.callbacks.divergence.DivergenceGuard")
class DivergenceGuard:
    stuck_epochs: int | None = at_least(1)
    stuck_margin: float = MISSING


@schema("dllabs.nets.linear.LinearFilter")
class LinearFilter:
    in_features: int = at_least(1)
    initial_weights: list[float] | None = MISSING


# ---- optimizer, scheduler, regularizer ---------------------------------------------------------------------------
@schema("torch.optim.SGD")
class SGD:
    lr: float = positive()
    momentum: float = at_least(0)
    dampening: float = at_least(0)
    weight_decay: float = at_least(0)
    nesterov: bool = MISSING
    maximize: bool = MISSING


@schema("torch.optim.Adam", "torch.optim.AdamW")
class Adam:
    lr: float = positive()
    betas: list[float] = _bounded(each={"ge": 0, "lt": 1}, length=2)
    eps: float = at_least(0)
    weight_decay: float = at_least(0)
    amsgrad: bool = MISSING
    maximize: bool = MISSING


@schema("dllabs.schedules.constant")
class ConstantSchedule:
    warmup_steps: int = at_least(0)


@schema("dllabs.schedules.cosine")
class CosineSchedule:
    min_factor: float = _bounded(ge=0, le=1)
    warmup_steps: int = at_least(0)


@schema("dllabs.schedules.linear")
class LinearSchedule:
    end_factor: float = _bounded(ge=0, le=1)
    warmup_steps: int = at_least(0)


@schema("dllabs.schedules.multistep")
class MultiStepSchedule:
    milestones: list[float] = _bounded(each={"gt": 0, "lt": 1})
    gamma: float = positive()
    warmup_steps: int = at_least(0)


@schema("dllabs.schedules.step")
class StepSchedule:
    step_epochs: int = at_least(1)
    gamma: float = positive()
    warmup_steps: int = at_least(0)


@schema("dllabs.schedules.onecycle")
class OneCycleSchedule:
    pct_start: float = _bounded(gt=0, lt=1)
    div_factor: float = positive()
    final_div_factor: float = positive()


@schema("dllabs.regularizers.L1", "dllabs.regularizers.L2")
class Penalty:
    strength: float = at_least(0)


# ---- trainer -----------------------------------------------------------------------------------------------------
@schema("lightning.Trainer", "lightning.pytorch.Trainer")
class Trainer:
    max_epochs: int | None = at_least(-1)  # -1: no limit
    max_steps: int = at_least(-1)
    accumulate_grad_batches: int = at_least(1)
    gradient_clip_val: float | None = at_least(0)
    log_every_n_steps: int = at_least(1)
    check_val_every_n_epoch: int | None = at_least(1)
    num_sanity_val_steps: int = at_least(-1)
    limit_train_batches: Any | None = _rule("batches")
    limit_val_batches: Any | None = _rule("batches")
    limit_test_batches: Any | None = _rule("batches")
    limit_predict_batches: Any | None = _rule("batches")
    val_check_interval: Any | None = _rule("batches")
    overfit_batches: Any = _rule("batches")
    enable_model_summary: bool = MISSING
    enable_checkpointing: bool = MISSING
    enable_progress_bar: bool = MISSING


# ---- checking ----------------------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_batches(value: Any) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return None
    if isinstance(value, float) and 0 <= value <= 1:
        return None
    return "must be a number of batches (an integer >= 0) or a fraction in [0, 1]"


def _check_local_folder(value: Any) -> str | None:
    if value is None or not str(value).startswith(("/", "./", "../", "~")):
        return None  # a hub name
    if not Path(str(value)).expanduser().exists():
        return "no such folder: give a hub name (e.g. gpt2) or a folder written by save_pretrained"
    return None


def _check_split_fractions(value: Any) -> str | None:
    if len(value) != 3 or any(not 0 < part < 1 for part in value) or abs(sum(value) - 1) > 1e-6:
        return "must be three fractions in (0, 1) for train, val, test that add up to 1"
    return None


def _check_split_roles(value: Any) -> str | None:
    if value is not None and (set(value) - {"train", "val", "test"}):
        return "must map the roles train, val, test to the splits train, validation, test"
    return None


_CHECKS = {
    "batches": _check_batches,
    "local_folder": _check_local_folder,
    "split_fractions": _check_split_fractions,
    "split_roles": _check_split_roles,
    "add_bias": lambda v: None if v in ("auto", True, False) else "must be one of auto, true, false",
    "resnet_depth": lambda v: (
        None if isinstance(v, int) and not isinstance(v, bool) and v >= 8 and (v - 2) % 6 == 0
        else "must be 6n+2 with n >= 1 (20, 32, 44, 56, 110)"
    ),
}


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _describe(tp: Any) -> str:
    """What a field of type ``tp`` allows, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_optional(tp):
        inner = next(a for a in args if a is not type(None))
        return f"null or {_describe(inner)}"
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is dict:
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(member.value for member in tp)
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, "a value")


def _bounds_text(bounds: dict[str, Any]) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return " and ".join(f"{words[k]} {bounds[k]:g}" for k in ("ge", "gt", "le", "lt") if bounds.get(k) is not None)


def _out_of_bounds(value: float, bounds: dict[str, Any]) -> bool:
    ge, gt, le, lt = (bounds.get(k) for k in ("ge", "gt", "le", "lt"))
    return (
        (ge is not None and value < ge) or (gt is not None and value <= gt)
        or (le is not None and value > le) or (lt is not None and value >= lt)
    )


def _primitive(tp: Any) -> type | None:
    """int, float or bool when ``tp`` is one of them (or Optional of one)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if _is_optional(tp) else [tp]
    return args[0] if len(args) == 1 and args[0] in (int, float, bool) else None


def _strict_type_problem(value: Any, tp: Any) -> bool:
    """OmegaConf converts ``"3"`` to 3 and ``"yes"`` to True; a constructor would get the string, so refuse it."""
    kind = _primitive(tp)
    if value is None or kind is None:
        return False
    if kind is bool:
        return not isinstance(value, bool)
    if kind is int:
        return not (isinstance(value, int) and not isinstance(value, bool))
    return not _is_number(value)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _check_field(key: str, value: Any, spec: dataclasses.Field, tp: Any, typed: DictConfig) -> None:
    """Raise ConfigError when ``value`` does not fit the field ``spec`` of type ``tp`` (choices, bounds, rule)."""
    allowed = _describe(tp)
    bounds = {k: v for k, v in spec.metadata.items() if k in ("ge", "gt", "le", "lt")}
    if bounds:
        allowed += " " + _bounds_text(bounds)
    if _strict_type_problem(value, tp):
        raise ConfigError(f"{key}={_shown(value)}: must be {allowed}")
    try:
        typed[spec.name] = value  # OmegaConf checks the type, the Enum choices, None for non-Optional fields
    except OmegaConfBaseException:
        raise ConfigError(f"{key}={_shown(value)}: must be {allowed}") from None
    if value is None:
        return
    if bounds and _is_number(value) and _out_of_bounds(value, bounds):
        raise ConfigError(f"{key}={_shown(value)}: must be {allowed}")
    each = spec.metadata.get("each")
    if each and any(_out_of_bounds(item, each) for item in value):
        raise ConfigError(f"{key}={_shown(value)}: every item must be {_bounds_text(each)}")
    length = spec.metadata.get("length")
    if length is not None and len(value) != length:
        raise ConfigError(f"{key}={_shown(value)}: must be a list of {length} numbers")
    rule = spec.metadata.get("check")
    problem = _CHECKS[rule](value) if rule else None
    if problem:
        raise ConfigError(f"{key}={_shown(value)}: {problem}")


class _Unresolved(Exception):
    """A value that cannot be resolved yet (``${hydra:...}`` before Hydra has set up the job)."""


def _value(node: DictConfig, key: str, path: str) -> Any:
    try:
        child = node[key]
    except MissingMandatoryValue:
        raise ConfigError(f"{path} has no value (???): give {path}=<value>") from None
    except OmegaConfBaseException as err:
        raise _Unresolved(path) from err
    if isinstance(child, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(child, resolve=True)
        except OmegaConfBaseException as err:
            raise _Unresolved(path) from err
    return child


def check_node(node: DictConfig, schema_cls: type, path: str) -> None:
    """Check the keys of ``node`` that ``schema_cls`` declares (other keys are left to the target's signature)."""
    typed = OmegaConf.structured(schema_cls)
    types = typing.get_type_hints(schema_cls)
    keys = set(node.keys())  # unlike `in node`, keys() also lists keys whose value is missing (???)
    for spec in dataclasses.fields(schema_cls):
        if spec.name not in keys:
            continue
        key = f"{path}.{spec.name}" if path else spec.name
        tp = types[spec.name]
        if dataclasses.is_dataclass(tp) and isinstance(node._get_node(spec.name), DictConfig):
            check_node(node[spec.name], tp, key)
            continue
        try:
            value = _value(node, spec.name, key)
        except _Unresolved:
            continue
        _check_field(key, value, spec, tp, typed)


def _accepted_keys(target: Any) -> set[str] | None:
    """Keyword arguments ``target`` takes; None when it takes any (``**kwargs``) or has no readable signature."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_keys(node: DictConfig, target_name: str, path: str) -> None:
    try:
        target = get_object(target_name)
    except Exception:  # noqa: BLE001 - a missing optional package is reported when the object is built
        return
    accepted = _accepted_keys(target)
    if accepted is None:
        return
    unknown = sorted(set(node.keys()) - accepted - _HYDRA_KEYS)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        known = ", ".join(sorted(accepted - {"self"}))
        raise ConfigError(
            f"{where}={_shown(node._get_node(unknown[0]))}: {target_name} takes no argument '{unknown[0]}' "
            f"(it takes {known})"
        )


def _instantiable_nodes(node: DictConfig, path: str = "") -> list[tuple[str, DictConfig, str]]:
    """(path, node, target) of every node under ``node`` that names a ``_target_`` (Hydra's own keys left out)."""
    found = []
    target = node.get("_target_") if "_target_" in node else None
    if isinstance(target, str):
        found.append((path, node, target))
    for key in node:
        if key in _HYDRA_KEYS or (not path and key == "hydra"):
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            found.extend(_instantiable_nodes(child, f"{path}.{key}" if path else str(key)))
    return found


def validate_config(cfg: DictConfig) -> None:
    """Check every value of a composed config; raise :class:`ConfigError` (one line) on the first bad one.

    Values first, then keys against the targets' signatures: that needs their modules imported (torch,
    transformers), so a bad value is reported without waiting for those imports.
    """
    check_node(cfg, TopLevel, "")
    nodes = _instantiable_nodes(cfg)
    for path, node, target in nodes:
        if target in SCHEMAS:
            check_node(node, SCHEMAS[target], path)
    for path, node, target in nodes:
        _check_keys(node, target, path)
