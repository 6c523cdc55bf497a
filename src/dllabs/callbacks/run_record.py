"""The record of one training run, kept and written by one callback: :class:`RunRecord`.

The record is the run folder's ``metrics.json`` (status, final metrics, best epoch and score, the per-epoch
history, the callbacks' ``results``), ``curves.png`` (that history drawn) and the run's row in TensorBoard's
HParams tab. It is written once, when the run ends, whichever way it ends:

- ``ok``: at the end of ``trainer.test`` (of ``fit`` for a run that does not test);
- ``diverged``: the divergence guard says so through :meth:`RunRecord.set_status`, then stops the run by raising
  :class:`~dllabs.errors.TrainingDiverged`; written by ``on_exception``;
- ``failed``: any other exception in a step, a hook or a callback (``on_exception``), or one raised outside the
  Trainer while the run is built (``cli.train`` hands it to :meth:`RunRecord.end`);
- ``pruned``: a search gave up on the run (``RunRecord.of(trainer).set_status("pruned", why)``): training stops
  after that validation, the best checkpoint is still tested, its checkpoints and curves are kept, and the record
  is written at the end of that test.

``metrics.json`` holds ``status``, ``output_dir``, ``error`` (when there is one), ``metrics`` (the last logged
value of each metric: validation at the end of fit, test of the best checkpoint), ``optimized_metric``,
``best_epoch``, ``best_score``, ``best_checkpoint``, ``epochs_completed``, ``wall_time_s``, ``history`` (one row per
epoch), ``results`` (see :mod:`dllabs.callbacks.results`), then ``stopped_at`` and whatever else
:meth:`RunRecord.set_status` was given.

Only rank 0 of a run writes. Under ``trainer=ddp_spawn`` the workers write nothing: rank 0's history comes back to
the main process (:mod:`dllabs.distributed`), where ``cli.train`` ends the record; a status set in a worker
(``pruned``) does not come back with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from omegaconf import DictConfig

from dllabs.callbacks.results import collect_results
from dllabs.errors import TrainingDiverged
from dllabs.records import STATUSES, plain_metrics, write_json_atomic
from dllabs.reporting.curves import plot_history
from dllabs.reporting.hparams import live_row
from dllabs.reporting.tensorboard_hparams import log_row

log = logging.getLogger("dllabs")

_WRITTEN_KEYS = frozenset({
    "status", "output_dir", "error", "metrics", "optimized_metric", "best_epoch", "best_score", "best_checkpoint",
    "epochs_completed", "wall_time_s", "history", "results", "stopped_at",
})


class RunRecord(L.Callback):
    """Keeps the run's per-epoch history and status; writes its record once when the run ends (module docstring).

    ``tests``: whether the run ends with ``trainer.test`` (then the record waits for its end, else it is written at
    the end of ``fit``). ``config``: the run's composed config, for the HParams row.
    """

    def __init__(
        self,
        output_dir: str | Path,
        optimized_metric: str | None = None,
        monitor_mode: str = "max",
        tests: bool = True,
        title: str = "",
        config: DictConfig | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.optimized_metric = optimized_metric
        self.monitor_mode = monitor_mode
        self.tests = tests
        self.title = title
        self.config = config
        self.started = time.time()
        self.status = "running"
        self.error: str | None = None
        self.stopped_at: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.fit_metrics: dict[str, float] = {}
        self.written: dict[str, Any] | None = None  # the record, once the run has ended
        self._trainer: L.Trainer | None = None

    @classmethod
    def for_run(cls, cfg: DictConfig) -> RunRecord:
        """The record of the run ``cfg`` describes (its folder, ``optimized_metric``, ``monitor_mode``, ``test``)."""
        return cls(
            cfg.paths.output_dir, cfg.get("optimized_metric"), cfg.get("monitor_mode", "max"),
            tests=bool(cfg.get("test", True)), title=str(cfg.get("task_name", "")), config=cfg,
        )

    @classmethod
    def find(cls, trainer: L.Trainer) -> RunRecord | None:
        """The record among ``trainer``'s callbacks, None when it has none (a Trainer built by hand)."""
        return next((c for c in trainer.callbacks if isinstance(c, cls)), None)

    @classmethod
    def of(cls, trainer: L.Trainer) -> RunRecord:
        """The record among ``trainer``'s callbacks (``cli.train`` always adds one)."""
        record = cls.find(trainer)
        if record is None:
            raise LookupError("this Trainer has no RunRecord callback; a run built by dllabs.cli.train has one")
        return record

    def set_status(self, status: str, error: str | None = None, *, stopped_at: Mapping[str, Any] | None = None,
                   **extra: Any) -> None:
        """Say how the run ends: ``ok``, ``diverged``, ``failed`` or ``pruned`` (which also stops training after
        the current step, like ``trainer.should_stop``). ``error``: why, for ``metrics.json`` and the report.
        ``stopped_at``: ``{"epoch", "step", <metric>: value}`` where it stopped; it becomes that epoch's history row
        when the epoch had none (a run stopped mid-epoch). ``extra``: more JSON-ready keys for ``metrics.json``."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        clashing = _WRITTEN_KEYS & set(extra)
        if clashing:
            raise ValueError(f"{', '.join(sorted(clashing))} are keys of metrics.json that the record writes itself")
        self.status, self.error = status, error
        if stopped_at is not None:
            self.stopped_at = dict(stopped_at)
        self.extra.update(extra)
        if status == "pruned" and self._trainer is not None:
            self._trainer.should_stop = True

    # --- the history -----------------------------------------------------------------------------------------

    def _record_epoch(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch}
        for key, value in trainer.callback_metrics.items():
            if key.endswith("_step"):
                continue
            number = _number(value)
            if number is not None:
                row[key.removesuffix("_epoch")] = number
        if self.history and self.history[-1]["epoch"] == row["epoch"]:
            self.history[-1].update(row)
        else:
            self.history.append(row)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record_epoch(trainer)
        if self.history and trainer.is_global_zero:
            row = self.history[-1]
            values = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and not k.startswith("lr"))
            log.info("epoch %d/%s  %s", row["epoch"] + 1, trainer.max_epochs, values)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._record_epoch(trainer)

    # --- the end of the run ----------------------------------------------------------------------------------

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_metrics = plain_metrics(dict(trainer.callback_metrics))  # testing replaces the validation values
        if not self.tests:
            self.end(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.end(trainer, exception)

    def end(self, trainer: L.Trainer | None = None, error: BaseException | None = None) -> dict[str, Any]:
        """End the run (``error``: the exception that ended it) and write its record; the record, as written.

        Only the first call writes: the record of a run is never rewritten, so a later call (``cli.train`` after the
        Trainer's hooks ended it) just returns it.
        """
        if self.written is not None:
            return self.written
        trainer = trainer or self._trainer
        if isinstance(error, TrainingDiverged):
            if self.status != "diverged":  # raised by something other than the guard, which reports it itself
                self.set_status("diverged", str(error))
            log.warning("run diverged: %s", self.error)
        elif error is not None:
            self.set_status("failed", f"{type(error).__name__}: {error}")
        elif self.status == "running":
            self.status = "ok"
        self.written = record = self._record(trainer)
        if _writes(trainer):
            write_json_atomic(self.output_dir / "metrics.json", record)
            if self.history:
                plot_history(self.history, self.output_dir / "curves.png", title=self.title)
            log.info("status %s; metrics written to %s", record["status"], self.output_dir / "metrics.json")
            if trainer is not None:  # the HParams row, now that status and metrics are known
                try:
                    log_row(trainer, live_row(self.config, record))
                except Exception as err:  # noqa: BLE001 - a dashboard must never fail a finished run
                    log.warning("could not build the run's hyper-parameter row: %s", err)
        return record

    def _record(self, trainer: L.Trainer | None) -> dict[str, Any]:
        if self.stopped_at is not None and all(row["epoch"] != self.stopped_at.get("epoch") for row in self.history):
            self.history.append({k: v for k, v in self.stopped_at.items() if k != "step"})
        metrics = dict(self.fit_metrics)
        if trainer is not None:
            metrics.update(plain_metrics(dict(trainer.callback_metrics)))
        best_epoch, best_score = _best_epoch(self.history, self.optimized_metric, self.monitor_mode)
        record: dict[str, Any] = {"status": self.status, "output_dir": str(self.output_dir)}
        if self.error is not None:
            record["error"] = self.error
        record.update(
            metrics=metrics,
            optimized_metric=self.optimized_metric,
            best_epoch=best_epoch,
            best_score=best_score,
            best_checkpoint=best_model_path(trainer),
            epochs_completed=len(self.history),
            wall_time_s=round(time.time() - self.started, 3),
            history=self.history,
        )
        results = collect_results(trainer.callbacks) if trainer is not None else {}
        if results:
            record["results"] = results
        if self.stopped_at is not None:
            record["stopped_at"] = self.stopped_at
        record.update(self.extra)
        return record

    # --- resume and spawned workers --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.history, "fit_metrics": self.fit_metrics}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore on resume (and from a ddp_spawn worker); the longer history wins, so testing an earlier (best)
        checkpoint after fit keeps the current one."""
        saved = list(state_dict.get("epochs", []))
        if len(saved) > len(self.history):
            self.history = saved
        self.fit_metrics = dict(state_dict.get("fit_metrics") or self.fit_metrics)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """A checkpoint written before the record was one callback keeps the history under ``MetricHistory``."""
        states = checkpoint.get("callbacks", {})
        if self.state_key not in states and "MetricHistory" in states:
            self.load_state_dict(states["MetricHistory"])


def optimized_value(record: Mapping[str, Any]) -> float | None:
    """What ``train`` returns to a sweeper: an ``ok`` run's best ``optimized_metric`` (else its final value), NaN
    for a run that ended otherwise."""
    if record.get("status") != "ok":
        return math.nan
    if record.get("best_score") is not None:
        return record["best_score"]
    return (record.get("metrics") or {}).get(record.get("optimized_metric"))


def best_model_path(trainer: L.Trainer | None) -> str | None:
    """The best checkpoint the Trainer's checkpoint callback kept, None when there is none."""
    callback = getattr(trainer, "checkpoint_callback", None)
    return getattr(callback, "best_model_path", "") or None


def _number(value: object) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().item() if value.numel() == 1 else None
    if isinstance(value, (int, float)):
        return float(value)  # NaN/inf kept on purpose: a diverging run must show it
    return None


def _best_epoch(history: list[dict[str, float]], metric: str | None, mode: str) -> tuple[int | None, float | None]:
    scored = [(row["epoch"], row[metric]) for row in history if metric in row and math.isfinite(row[metric])]
    if not scored:
        return None, None
    pick = max if mode == "max" else min
    epoch, score = pick(scored, key=lambda item: item[1])
    return int(epoch), float(score)


def _writes(trainer: L.Trainer | None) -> bool:
    """Whether this process writes the record: rank 0 of the run, not a ``ddp_spawn`` worker (see the module)."""
    if trainer is None:
        return getattr(rank_zero_only, "rank", 0) == 0
    spawned_worker = (
        isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    )
    return trainer.is_global_zero and not spawned_worker
