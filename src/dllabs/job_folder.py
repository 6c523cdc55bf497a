"""What a job may do with the folder Hydra gives it: a run is what it is (its composed config), never its folder.

A job's folder (``hydra.run.dir``, or ``<hydra.sweep.dir>/<job number>`` of a sweep) may already hold a run from an
earlier command. :func:`check_job_folder`, called for every job before Hydra makes or writes anything, refuses
with one line a job whose composed config (without the keys in :data:`VOLATILE`, such as ``ckpt_path``) differs
from the run saved in that folder, and a job that would train over a finished run without ``ckpt_path=last``. A
job that matches a finished run is then skipped by ``train`` (:func:`finished_record`), and Hydra does not
rewrite that run's ``.hydra/`` files: ``hydra.output_subdir`` is :func:`config_subdir`, None for a finished run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dllabs.errors import ConfigError, CorruptDataError
from dllabs.records import FINISHED

# keys that say how a job starts, not what it is: a job and a run differing only in these are the same run
VOLATILE = ("ckpt_path",)
_SHOWN = 3  # differing keys named in a refusal


def finished_record(folder: str | Path) -> dict[str, Any] | None:
    """``folder``'s ``metrics.json`` when it records a finished run, else None."""
    metrics_file = Path(folder) / "metrics.json"
    if not metrics_file.is_file():
        return None
    try:
        record = json.loads(metrics_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CorruptDataError(f"cannot read {metrics_file} ({error}); delete it or choose another folder") from error
    return record if record.get("status") in FINISHED else None


def config_subdir(name: str) -> str | None:
    """``hydra.output_subdir`` of the job Hydra is starting: ``name``, or None (Hydra writes no config files)
    when the job's folder holds a finished run, whose ``.hydra/`` must stay as it was."""
    folder = HydraConfig.get().runtime.output_dir
    return None if folder and finished_record(folder) is not None else name


def _identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings that make a run what it is: the composed config as saved, without Hydra's node and VOLATILE."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("hydra", *VOLATILE):
        plain.pop(key, None)
    return plain


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def differences(cfg: DictConfig, saved: DictConfig) -> list[str]:
    """``key=<saved> (this job: <value>)`` for each setting where ``cfg`` differs from the ``saved`` run config."""
    mine, theirs = _flat(_identity(cfg)), _flat(_identity(saved))
    missing = object()
    return [
        f"{key}={theirs.get(key, '<unset>')} (this job: {mine.get(key, '<unset>')})"
        for key in sorted(set(mine) | set(theirs))
        if mine.get(key, missing) != theirs.get(key, missing)
    ]


def _is_basic_sweep(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "hydra.sweeper._target_") == f"{BasicSweeper.__module__}.{BasicSweeper.__name__}"


def check_job_folder(cfg: DictConfig, multirun: bool) -> None:
    """Refuse (one :class:`ConfigError` line) a job that would relabel or overwrite the run already in its folder
    (``cfg.hydra.runtime.output_dir``). A sweeper that draws its jobs as it goes (Optuna) gives each trial a new
    folder; its jobs are not known here."""
    if multirun and not _is_basic_sweep(cfg):
        return
    folder = Path(str(cfg.hydra.runtime.output_dir))
    saved_file = folder / ".hydra" / "config.yaml"
    if saved_file.is_file():
        changed = differences(cfg, OmegaConf.load(saved_file))
        if changed:
            more = f" and {len(changed) - _SHOWN} more" if len(changed) > _SHOWN else ""
            raise ConfigError(
                f"{folder} holds a run with other settings: {'; '.join(changed[:_SHOWN])}{more}; a run's folder is "
                "never given to other settings: choose a new hydra.sweep.dir (hydra.run.dir), or resume that sweep "
                "with its own settings"
            )
    finished = finished_record(folder)
    if finished is not None and cfg.get("ckpt_path") != "last":
        raise ConfigError(
            f"{folder} holds a finished run ({finished['status']}); pass ckpt_path=last to resume the sweep (finished "
            "runs are skipped), or choose a new hydra.sweep.dir (hydra.run.dir)"
        )
