"""What identifies a run and what it scored: the one row that TensorBoard's HParams tab and ``scripts/report.py`` show.

:func:`run_row` turns a run's config, Hydra choices, overrides and ``metrics.json`` record into a
:class:`RunRow`: a few readable hyper-parameters (the keys the sweep varies, the settings that identify the
run, its other overrides, and its status) and the metrics to compare them by. The HParams callback calls it
when a run ends, the sweep report calls it on each finished run folder, so the two cannot disagree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

# Settings that say what a run is, by override key; a config-group key (``model``) shows the option picked.
IDENTIFYING = (
    "experiment", "model", "data", "optimizer", "optimizer.lr", "regularizer", "regularizer.strength",
    "scheduler", "finetune",
)
# Overrides that change where or how visibly a run works, not what it learns.
_NOT_SETTINGS_PREFIXES = (
    "hydra", "paths.", "logger", "callbacks", "debug", "sweep", "task_name", "ckpt_path", "trainer.enable_",
    "trainer.num_sanity_val_steps", "trainer.limit_", "trainer.log_every_n_steps", "trainer.accelerator",
    "trainer.devices",
)
_NOT_SETTINGS_LEAVES = {"data_dir", "download", "num_workers", "pin_memory", "persistent_workers", "cache_dir"}
# Final metrics worth comparing: validation and test ones.
_FINAL_PREFIXES = ("val/", "test/")

HParam = str | float | int | bool


@dataclass
class RunRow:
    """One run as HParams and the sweep table show it: hyper-parameters and metrics, by readable name."""

    hparams: dict[str, HParam] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _parse(overrides: Iterable[str]) -> list[Any]:
    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def is_setting(key: str) -> bool:
    """Whether an override key is a hyper-parameter (not a path, logger, callback, debug or Hydra switch)."""
    return not key.startswith(_NOT_SETTINGS_PREFIXES) and key.rsplit(".", 1)[-1] not in _NOT_SETTINGS_LEAVES


def swept_keys(sweep_config: DictConfig | Mapping | None) -> list[str]:
    """The keys a sweep varies, from its ``multirun.yaml``: sweep overrides (``a=1,2``, ``choice(...)``,
    ``range(...)``) and the Optuna search space (``hydra.sweeper.params``)."""
    if not sweep_config:
        return []
    sweep_config = OmegaConf.create(sweep_config) if not isinstance(sweep_config, DictConfig) else sweep_config
    task = OmegaConf.select(sweep_config, "hydra.overrides.task") or []
    keys = [o.key_or_group for o in _parse(task) if o.is_sweep_override()]
    params = OmegaConf.select(sweep_config, "hydra.sweeper.params") or {}
    keys += [o.key_or_group for o in _parse(f"{k}={v}" for k, v in params.items()) if o.is_sweep_override()]
    return [k for k in dict.fromkeys(keys) if is_setting(k)]


def _plain(value: Any) -> HParam:
    """A value HParams can show: numbers, strings and booleans as they are, anything else as text."""
    if isinstance(value, bool | int | float | str):
        return value
    if value is None:
        return "none"
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return str(value)


def _value(key: str, config: DictConfig | None, choices: Mapping[str, Any], given: Mapping[str, str]) -> HParam | None:
    if key in choices:
        return _plain(choices[key])
    if config is not None:
        try:
            found = OmegaConf.select(config, key, default=None)
        except Exception:  # noqa: BLE001 - an unresolvable value is shown as the override gave it
            found = None
        if found is not None:
            return _plain(found)
    return given.get(key)


def run_row(
    config: DictConfig | None,
    choices: Mapping[str, Any],
    overrides: Sequence[str],
    record: Mapping[str, Any],
    swept: Sequence[str] = (),
) -> RunRow:
    """The row of one run: hyper-parameters (``swept`` keys first, then :data:`IDENTIFYING` settings, then the
    run's other setting overrides, then ``status``) and metrics (``best/<optimized_metric>``, final ``val/``
    and ``test/`` metrics as ``final/...``, ``best_epoch``, ``epochs``, ``time_s``)."""
    given = {}
    for override in _parse(overrides):
        if override.is_delete():
            continue
        given[override.key_or_group] = override.value() if not override.is_sweep_override() else None
    keys = [*swept, *IDENTIFYING, *(k for k in given if is_setting(k))]
    hparams: dict[str, HParam] = {}
    for key in dict.fromkeys(keys):
        value = _value(key, config, choices, given)
        if value is not None:
            hparams[key] = _plain(value)
    hparams["status"] = str(record.get("status") or "failed")

    metrics: dict[str, float] = {}
    name, best = record.get("optimized_metric"), record.get("best_score")
    if name:
        metrics[f"best/{name}"] = math.nan if best is None else float(best)
    for key, value in sorted((record.get("metrics") or {}).items()):
        if key.startswith(_FINAL_PREFIXES):
            metrics[f"final/{key}"] = float(value)
    if record.get("best_epoch") is not None:
        metrics["best_epoch"] = float(record["best_epoch"])
    if record.get("epochs_completed") is not None:
        metrics["epochs"] = float(record["epochs_completed"])
    if record.get("wall_time_s") is not None:
        metrics["time_s"] = float(record["wall_time_s"])
    return RunRow(hparams, metrics)


def folder_row(run: Any) -> RunRow:
    """:func:`run_row` of a finished :class:`dllabs.runs.RunFolder`."""
    config = run.config if (run.path / ".hydra" / "config.yaml").is_file() else None
    return run_row(config, run.choices, run.overrides, run.record, swept_keys(run.sweep_config))


def live_row(config: DictConfig, record: Mapping[str, Any]) -> RunRow:
    """:func:`run_row` of the run in progress, from Hydra's runtime config (the same values its folder will hold)."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = OmegaConf.to_container(hydra.runtime.choices) if hydra is not None else {}
    overrides = list(hydra.overrides.task) if hydra is not None else []
    return run_row(config, choices, overrides, record, _live_swept_keys())


def _live_swept_keys() -> list[str]:
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    sweep_file = Path(HydraConfig.get().sweep.dir) / "multirun.yaml"
    return swept_keys(OmegaConf.load(sweep_file)) if sweep_file.is_file() else []


def run_name(fallback: str = "run") -> str:
    """The TensorBoard name of the run Hydra is starting: the values of the keys its sweep varies
    (``optimizer.lr=0.01,regularizer=l1``), else its setting overrides, else ``<experiment>,<time>``.

    Used as the TensorBoard logger's version (``${dllabs.run_name:...}``), a sub-folder of ``<run>/tensorboard``.
    """
    if not HydraConfig.initialized():
        return f"{fallback},{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    hydra = HydraConfig.get()
    overrides = [o for o in _parse(hydra.overrides.task) if not o.is_delete()]
    if hydra.mode == RunMode.MULTIRUN:
        swept = _live_swept_keys()
        chosen = [o for o in overrides if o.key_or_group in swept] or [o for o in overrides if is_setting(o.key_or_group)]
        name = ",".join(o.input_line or f"{o.key_or_group}={o.value()}" for o in chosen) or f"job{hydra.job.num}"
    else:
        experiment = hydra.runtime.choices.get("experiment") or fallback
        name = f"{experiment},{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    return name.replace("/", "_").replace("\\", "_")[:200]
