"""Read run folders, and rebuild a finished run from its own saved config: data, task, and its checkpoints.

:class:`RunFolder` is the one reader of what ``train.py`` leaves in a run folder (config, overrides, Hydra
choices, ``metrics.json``, checkpoints); :class:`Sweep` is a multirun folder (or any folder of run folders) as
its runs in job order. Reports, evaluation, prediction, generation and the results ledger all read runs
through them, so they use the settings the run was trained with, never today's defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dllabs.errors import CheckpointMismatchError, ConfigError, CorruptDataError

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
    return RunFolder(run_dir).best_checkpoint()


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


class RunFolder:
    """One run folder made by ``train.py``: what it was asked to do and what it recorded.

    Everything is read lazily and at most once. A folder without ``.hydra/`` (a run started in-process, e.g.
    by a test) has no overrides or choices; one without ``metrics.json`` is a job that crashed before writing
    it (status ``failed``).

    Attributes and properties, for reports and the results ledger:

    - ``path``: the folder; ``name``: its name; ``job_number``: the job index of a multirun job folder, else None
    - ``config``: the composed config (``.hydra/config.yaml``, ``${hydra:...}`` resolved), see :func:`load_run_config`
    - ``hydra``: the Hydra config of the run (``.hydra/hydra.yaml``'s ``hydra`` node, empty when absent)
    - ``overrides``: the command-line overrides of this run/job (``.hydra/overrides.yaml``), as strings
    - ``sweep_config``: the config of the multirun it belongs to (``../multirun.yaml``), None for a single run
    - ``choices``: the config-group options picked (``{"model": "simplenn", "optimizer": "sgd", ...}``)
    - ``record``: ``metrics.json`` as a dict (empty when missing); ``status``, ``error``, ``metrics``
      (final metrics), ``results`` (callbacks' sections), ``history`` (per-epoch rows), ``optimized_metric``,
      ``best_score``, ``best_epoch``, ``epochs_completed``, ``wall_time_s`` are its fields
    - ``best_checkpoint()``, ``last_checkpoint``: the checkpoint files
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFolder) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    @staticmethod
    def is_run(path: str | Path) -> bool:
        """Whether ``path`` is a run folder: it holds ``.hydra/config.yaml`` or ``metrics.json``."""
        path = Path(path)
        return (path / ".hydra" / "config.yaml").is_file() or (path / "metrics.json").is_file()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def job_number(self) -> int | None:
        return int(self.name) if self.name.isdigit() else None

    @cached_property
    def config(self) -> DictConfig:
        return load_run_config(self.path)

    @cached_property
    def hydra(self) -> DictConfig:
        file = self.path / ".hydra" / "hydra.yaml"
        return OmegaConf.load(file).hydra if file.is_file() else OmegaConf.create({})

    @cached_property
    def overrides(self) -> list[str]:
        file = self.path / ".hydra" / "overrides.yaml"
        return [str(item) for item in OmegaConf.load(file)] if file.is_file() else []

    @cached_property
    def sweep_config(self) -> DictConfig | None:
        """The config of the multirun this run is a job of (``../multirun.yaml``), None for a single run."""
        file = self.path.parent / "multirun.yaml"
        return OmegaConf.load(file) if file.is_file() else None

    @cached_property
    def choices(self) -> dict[str, str | None]:
        choices = OmegaConf.select(self.hydra, "runtime.choices")
        return {str(k): v for k, v in OmegaConf.to_container(choices).items()} if choices is not None else {}

    @cached_property
    def record(self) -> dict[str, Any]:
        file = self.path / "metrics.json"
        if not file.is_file():
            return {}
        try:
            return json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CorruptDataError(f"cannot read {file} ({error}); delete it or re-run that job") from error

    @property
    def status(self) -> str:
        """``ok``, ``diverged``, ``pruned`` or ``failed`` (also: no metrics.json, a run killed before it ended)."""
        if not (self.path / "metrics.json").is_file():
            return "failed"
        return str(self.record.get("status", "unknown"))

    @property
    def error(self) -> str | None:
        if not (self.path / "metrics.json").is_file():
            return "no metrics.json (crashed before training)"
        return self.record.get("error")

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.get("metrics") or {}

    @property
    def results(self) -> dict[str, Any]:
        return self.record.get("results") or {}

    @property
    def history(self) -> list[dict[str, float]]:
        return self.record.get("history") or []

    @property
    def optimized_metric(self) -> str | None:
        return self.record.get("optimized_metric")

    @property
    def best_score(self) -> float | None:
        return self.record.get("best_score")

    @property
    def best_epoch(self) -> int | None:
        return self.record.get("best_epoch")

    @property
    def epochs_completed(self) -> int | None:
        return self.record.get("epochs_completed")

    @property
    def wall_time_s(self) -> float | None:
        return self.record.get("wall_time_s")

    @property
    def last_checkpoint(self) -> Path | None:
        path = self.path / "checkpoints" / "last.ckpt"
        return path if path.exists() else None

    def best_checkpoint(self) -> Path:
        """The best checkpoint (recorded in metrics.json or named ``best*.ckpt``), else ``last.ckpt``."""
        recorded = self.record.get("best_checkpoint")
        if recorded and Path(recorded).exists():
            return Path(recorded)
        checkpoints = self.path / "checkpoints"
        best = sorted(checkpoints.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
        if best:
            return best[-1]
        if self.last_checkpoint is not None:
            return self.last_checkpoint
        raise ConfigError(f"no checkpoint in {checkpoints}: was the run trained to the end of an epoch?")


def _job_order(run: RunFolder) -> tuple:
    number = run.job_number
    return (0, number, "") if number is not None else (1, 0, str(run.path))


class Sweep:
    """The runs of a multirun folder (or of any folder of run folders, or of one run folder), in job order.

    ``Sweep(folder)`` finds the run folder itself or the run folders one or two levels below it (numbered job
    folders first, by number); ``Sweep.of(paths)`` joins several such paths. Iterating gives
    :class:`RunFolder`s; :meth:`settings` labels each run by the overrides that differ between the runs.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise ConfigError(
                f"{folder} is not a folder; pass a multirun folder such as outputs/<task>/multiruns/<time>"
            )
        self.folder = folder
        if RunFolder.is_run(folder):
            found = [folder]
        else:
            found = [p for p in folder.glob("*") if RunFolder.is_run(p)]
            found += [p for p in folder.glob("*/*") if RunFolder.is_run(p) and p.parent not in found]
        self.runs: list[RunFolder] = sorted({RunFolder(p) for p in found}, key=_job_order)
        if not self.runs:
            raise ConfigError(f"no run folders (with .hydra/config.yaml or metrics.json) under {folder}")

    @classmethod
    def of(cls, paths: Sequence[str | Path]) -> Sweep:
        """One sweep of the runs of several folders, in the order given."""
        sweeps = [cls(path) for path in paths]
        if not sweeps:
            raise ConfigError("no run folders given")
        joined = sweeps[0]
        for sweep in sweeps[1:]:
            joined.runs += [run for run in sweep.runs if run not in joined.runs]
        return joined

    def __iter__(self) -> Iterator[RunFolder]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def settings(self) -> list[str]:
        """Per run, its overrides that not every run shares (``(base)`` when none): what the sweep varied."""
        common = set.intersection(*(set(run.overrides) for run in self.runs))
        return [" ".join(o for o in run.overrides if o not in common) or "(base)" for run in self.runs]
