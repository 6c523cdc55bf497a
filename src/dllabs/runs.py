"""Rebuild a finished run from its own saved config: data, task, and its checkpoints.

Evaluation, prediction and generation all start here, so they use the settings the run was trained with,
never today's defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dllabs.errors import CheckpointMismatchError, ConfigError

_HYDRA_INTERPOLATION = re.compile(r"\$\{hydra:([A-Za-z0-9_.]+)\}")


def _resolve_hydra_interpolations(node: object, hydra_cfg: DictConfig) -> object:
    """Replace ``${hydra:key}`` in strings by the value the run had, so the config resolves outside Hydra."""
    if isinstance(node, dict):
        return {k: _resolve_hydra_interpolations(v, hydra_cfg) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_hydra_interpolations(v, hydra_cfg) for v in node]
    if isinstance(node, str):
        return _HYDRA_INTERPOLATION.sub(lambda m: str(OmegaConf.select(hydra_cfg, m.group(1))), node)
    return node


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config saved in ``<run_dir>/.hydra/``, with dotlist ``overrides`` applied on top."""
    run_dir = Path(run_dir).expanduser().resolve()
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():
        raise ConfigError(
            f"{run_dir} is not a dllabs run folder: {config_file} is missing. "
            "Pass run_dir=<a folder under outputs/ made by train.py>."
        )
    raw = OmegaConf.to_container(OmegaConf.load(config_file), resolve=False)
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    hydra_cfg = OmegaConf.load(hydra_file).hydra if hydra_file.exists() else OmegaConf.create({})
    cfg = OmegaConf.create(_resolve_hydra_interpolations(raw, hydra_cfg))
    cfg.paths.output_dir = str(run_dir)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def instantiate_datamodule(cfg: DictConfig):
    """The run's LightningDataModule."""
    return instantiate(cfg.data)


def instantiate_task(cfg: DictConfig):
    """The run's task, with its optimiser, scheduler and regulariser factories."""
    parts = {name: instantiate(cfg[name]) if cfg.get(name) else None for name in ("optimizer", "scheduler", "regularizer")}
    return instantiate(cfg.model, **parts)


def best_checkpoint(run_dir: str | Path) -> Path:
    """The run's best checkpoint (recorded in metrics.json or named ``best*.ckpt``), else its ``last.ckpt``."""
    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
        recorded = json.loads(metrics_file.read_text()).get("best_checkpoint")
        if recorded and Path(recorded).exists():
            return Path(recorded)
    checkpoints = run_dir / "checkpoints"
    best = sorted(checkpoints.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    if (checkpoints / "last.ckpt").exists():
        return checkpoints / "last.ckpt"
    raise ConfigError(f"no checkpoint in {checkpoints}: was the run trained to the end of an epoch?")


def read_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint loaded safely (tensors and plain data only)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointMismatchError(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: {err}). "
            "Is it truncated, or not a dllabs checkpoint?"
        ) from err


def check_state_dict_fits(model: torch.nn.Module, state: dict, source: str | Path) -> None:
    """Raise :class:`CheckpointMismatchError` naming the differences when ``state`` does not fit ``model``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            details.append(f"unexpected {len(unexpected)} tensors (e.g. {', '.join(unexpected[:3])})")
        if wrong_shape:
            details.append(f"{len(wrong_shape)} shape mismatches (e.g. {'; '.join(wrong_shape[:3])})")
        raise CheckpointMismatchError(
            f"checkpoint {source} was not saved from this model: {'; '.join(details)}. "
            "Use the model/net settings the checkpoint was trained with (eval.py and predict.py take them from "
            "the run folder: run_dir=<run>)."
        )


def load_task_weights(task: torch.nn.Module, ckpt_path: str | Path) -> dict:
    """Load a checkpoint's weights into ``task`` after checking they fit; returns the checkpoint dict."""
    checkpoint = read_checkpoint(ckpt_path)
    state = checkpoint.get("state_dict", checkpoint)
    check_state_dict_fits(task, state, ckpt_path)
    task.load_state_dict(state)
    return checkpoint


@dataclass
class RestoredRun:
    """A finished run rebuilt from its own config, with the weights of one of its checkpoints."""

    cfg: DictConfig
    datamodule: object
    task: torch.nn.Module
    checkpoint: Path


def restore_run(run_dir: str | Path, overrides: Sequence[str] = (), ckpt: str | Path | None = None) -> RestoredRun:
    """Rebuild ``run_dir``'s data and task, load ``ckpt`` (default: its best checkpoint) into the task and
    restore the data module's saved state (e.g. a vocabulary) from the same checkpoint."""
    cfg = load_run_config(run_dir, overrides)
    datamodule = instantiate_datamodule(cfg)
    task = instantiate_task(cfg)
    checkpoint_path = Path(ckpt) if ckpt else best_checkpoint(run_dir)
    checkpoint = load_task_weights(task, checkpoint_path)
    datamodule_state = checkpoint.get(type(datamodule).__qualname__)
    if datamodule_state and hasattr(datamodule, "load_state_dict"):
        datamodule.load_state_dict(datamodule_state)
    return RestoredRun(cfg, datamodule, task, checkpoint_path)
