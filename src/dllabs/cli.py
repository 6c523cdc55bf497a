"""``train``: one training run as a plain function of a composed config (``train.py`` runs it under Hydra)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dllabs.config_schema import validate_config
from dllabs.entry import CONF_DIR, route_lightning_logs_through_hydra
from dllabs.entry import run_mode as _run_mode
from dllabs.errors import ConfigError, TrainingDiverged
from dllabs.pairings import check_pairing
from dllabs.records import plain_metrics, write_json_atomic
from dllabs.reporting.hparams import run_name
from dllabs.resolvers import register_resolvers

log = logging.getLogger("dllabs")
# the TensorBoard logger's version (conf/logger/tensorboard.yaml): runs named by what sets them apart
OmegaConf.register_new_resolver("dllabs.run_name", run_name, replace=True)
register_resolvers()  # ${dllabs.cpu_precision:...} of conf/trainer/default.yaml


def build_task(cfg: DictConfig):
    """The task of ``cfg.model`` with its optimiser, scheduler and regulariser factories."""
    from dllabs.runs import instantiate_task

    task = instantiate_task(cfg)
    import torch

    if cfg.get("channels_last"):
        task.net = task.net.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        task.net.compile()  # in place: checkpoints keep the plain parameter names
    return task


def _instantiate_dict(node: DictConfig | None) -> list[Any]:
    if not node:
        return []
    return [instantiate(value) for value in node.values() if isinstance(value, DictConfig) and "_target_" in value]


def _resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``: a file, or ``last`` = this run folder's last.ckpt, else the newest earlier run's.

    An unreadable (truncated) file is replaced by the newest readable checkpoint beside it, with a warning.
    """
    from dllabs.checkpointing import resumable  # imports torch and Lightning: not at start-up, like fit()

    requested = cfg.get("ckpt_path")
    if not requested:
        return None
    if requested != "last":
        if not Path(requested).exists():
            raise ConfigError(f"ckpt_path={requested} does not exist; give a .ckpt file or ckpt_path=last")
        return resumable(requested)
    own = output_dir / "checkpoints" / "last.ckpt"
    if own.exists():
        return resumable(own)
    runs_root = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    candidates = sorted(runs_root.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    candidates = [c for c in candidates if output_dir not in c.parents]
    if _run_mode() == RunMode.MULTIRUN:
        log.info("ckpt_path=last: no checkpoint in %s yet, starting this job from scratch", output_dir)
        return None
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last: no last.ckpt in {output_dir} nor under {runs_root}; "
            "pass ckpt_path=<run>/checkpoints/last.ckpt"
        )
    log.info("ckpt_path=last resumes %s", candidates[-1])
    return resumable(candidates[-1])


def _best_epoch(history: list[dict[str, float]], metric: str, mode: str) -> tuple[int | None, float | None]:
    scored = [(row["epoch"], row[metric]) for row in history if metric in row and math.isfinite(row[metric])]
    if not scored:
        return None, None
    pick = max if mode == "max" else min
    epoch, score = pick(scored, key=lambda item: item[1])
    return int(epoch), float(score)


def train(cfg: DictConfig) -> float | None:
    """Train, test the best checkpoint, write ``metrics.json``.

    Returns the best epoch's ``cfg.optimized_metric`` (for sweepers), NaN for a diverged run.
    """
    check_pairing(CONF_DIR)  # a model that cannot take this data stops here, before any file is touched
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = output_dir / "metrics.json"
    if cfg.get("ckpt_path") == "last" and metrics_file.exists():
        previous = json.loads(metrics_file.read_text())
        if previous.get("status") in ("ok", "diverged"):
            log.info("%s already finished (%s); not training it again", output_dir, previous["status"])
            return _returned_metric(previous, cfg)

    from dllabs.callbacks.history import MetricHistory

    route_lightning_logs_through_hydra()
    run = _Run(cfg, output_dir, MetricHistory())
    try:
        validate_config(cfg)  # under train.py already done before the run folder; a sweep member's is recorded
        run.fit()
        run.test()
    except TrainingDiverged as err:
        run.diverged(err)
    except BaseException as err:
        run.record.update(status="failed", error=f"{type(err).__name__}: {err}")
        run.finish(metrics_file)
        raise
    return _returned_metric(run.finish(metrics_file), cfg)


def _returned_metric(record: dict[str, Any], cfg: DictConfig) -> float | None:
    if record.get("status") != "ok":
        return float("nan")
    if record.get("best_score") is not None:
        return record["best_score"]
    return record.get("metrics", {}).get(cfg.get("optimized_metric"))


class _Run:
    """The objects of one training run and the record that becomes its ``metrics.json``."""

    def __init__(self, cfg: DictConfig, output_dir: Path, history) -> None:
        self.cfg = cfg
        self.output_dir = output_dir
        self.history = history
        self.started = time.time()
        self.record: dict[str, Any] = {"status": "running", "output_dir": str(output_dir)}
        self.trainer = self.task = self.datamodule = None

    def fit(self) -> None:
        import lightning as L

        from dllabs.runs import check_state_dict_fits, load_task_weights, read_checkpoint

        cfg = self.cfg
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        self.datamodule = instantiate(cfg.data)
        self.task = build_task(cfg)
        callbacks = [*_instantiate_dict(cfg.get("callbacks")), self.history]
        loggers = _instantiate_dict(cfg.get("logger"))
        self.trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, default_root_dir=str(self.output_dir)
        )
        ckpt_path = _resolve_ckpt_path(cfg, self.output_dir)
        if ckpt_path:
            check_state_dict_fits(self.task, read_checkpoint(ckpt_path)["state_dict"], ckpt_path)
        if cfg.get("train", True):
            self.trainer.fit(self.task, datamodule=self.datamodule, ckpt_path=ckpt_path)
            self.record["fit_metrics"] = plain_metrics(dict(self.trainer.callback_metrics))
        elif ckpt_path:
            load_task_weights(self.task, ckpt_path)
        self.record["status"] = "ok"

    def test(self) -> None:
        """Test the best checkpoint (the current weights when there is none)."""
        if not self.cfg.get("test", True):
            return
        best = _best_model_path(self.trainer)
        self.trainer.test(self.task, datamodule=self.datamodule, ckpt_path=best or None, weights_only=True)

    def diverged(self, err: TrainingDiverged) -> None:
        from dllabs.callbacks.divergence import DivergenceGuard

        log.warning("run diverged: %s", err)
        self.record.update(status="diverged", error=str(err))
        callbacks = self.trainer.callbacks if self.trainer is not None else []
        guard = next((c for c in callbacks if isinstance(c, DivergenceGuard)), None)
        if guard is not None and guard.diverged_at is not None:
            seen = {row["epoch"] for row in self.history.epochs}
            if guard.diverged_at["epoch"] not in seen:
                row = {k: v for k, v in guard.diverged_at.items() if k != "step"}
                self.history.epochs.append({("train/loss" if k == "loss" else k): v for k, v in row.items()})

    def finish(self, metrics_file: Path) -> dict[str, Any]:
        """Write ``metrics.json`` (and the curves figure) from whatever the run got to."""
        from dllabs.callbacks.hparams import HParams
        from dllabs.callbacks.results import collect_results
        from dllabs.reporting.curves import plot_history

        record, cfg, trainer = self.record, self.cfg, self.trainer
        metrics = dict(record.pop("fit_metrics", {}))
        if trainer is not None:
            metrics.update(plain_metrics(dict(trainer.callback_metrics)))
        monitor = cfg.get("optimized_metric")
        best_epoch, best_score = _best_epoch(self.history.epochs, monitor, cfg.get("monitor_mode", "max"))
        record.update(
            metrics=metrics,
            optimized_metric=monitor,
            best_epoch=best_epoch,
            best_score=best_score,
            best_checkpoint=_best_model_path(trainer) if trainer is not None else None,
            epochs_completed=len(self.history.epochs),
            wall_time_s=round(time.time() - self.started, 3),
            history=self.history.epochs,
        )
        results = collect_results(trainer.callbacks) if trainer is not None else {}
        if results:
            record["results"] = results
        if _is_global_zero(trainer):
            write_json_atomic(metrics_file, record)
            if self.history.epochs:
                plot_history(self.history.epochs, self.output_dir / "curves.png", title=str(cfg.task_name))
            log.info("status %s; metrics written to %s", record["status"], metrics_file)
        if trainer is not None:  # TensorBoard's HParams row, now that status and metrics are known
            for callback in trainer.callbacks:
                if isinstance(callback, HParams):
                    callback.log_run(trainer, cfg, record)
        return record


def _is_global_zero(trainer) -> bool:
    """Only rank 0 writes the run's files: under trainer=ddp every rank runs ``train`` to the end."""
    if trainer is not None:
        return trainer.is_global_zero
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _best_model_path(trainer) -> str | None:
    callback = getattr(trainer, "checkpoint_callback", None)
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path or None
