"""Stop a run that diverged, so a sweep records it as ``diverged`` and goes on.

The guard reports the status, the reason and where the run stopped to the run's record
(:class:`~dllabs.callbacks.run_record.RunRecord`), then raises :class:`TrainingDiverged` to stop at once: a run
whose weights are NaN must not validate, checkpoint or test them.

A run has diverged when its training loss is no longer finite (or above ``max_loss``), or, with
``stuck_epochs`` set, when after that many epochs its validation accuracy is still at chance level (the task's
``chance_level``, e.g. 1/num_classes, plus ``stuck_margin``): such a run has learned nothing and its "best
checkpoint" means nothing, e.g. SGD at lr 1.0 with BatchNorm, whose loss stays finite while the net is wrecked.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from dllabs.callbacks.run_record import RunRecord
from dllabs.errors import TrainingDiverged


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class DivergenceGuard(L.Callback):
    """Raise :class:`TrainingDiverged` when ``training_step`` returns a NaN/inf loss or it exceeds ``max_loss``,
    or when ``stuck_metric`` is still within ``stuck_margin`` of the task's ``chance_level`` after ``stuck_epochs``
    epochs (off when ``stuck_epochs`` is None or the task declares no chance level)."""

    def __init__(
        self,
        max_loss: float = math.inf,
        stuck_epochs: int | None = None,
        stuck_metric: str = "val/acc",
        stuck_margin: float = 0.01,
    ) -> None:
        self.max_loss = max_loss
        self.stuck_epochs = stuck_epochs
        self.stuck_metric = stuck_metric
        self.stuck_margin = stuck_margin

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        chance = getattr(pl_module, "chance_level", None)
        if trainer.sanity_checking or not self.stuck_epochs or chance is None:
            return
        if trainer.current_epoch + 1 != self.stuck_epochs or self.stuck_metric not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.stuck_metric])
        if value > chance + self.stuck_margin:
            return
        self._stop(
            trainer,
            f"{self.stuck_metric} is {value:.4f} after {self.stuck_epochs} epochs, at chance level ({chance:.4f}): "
            "the run learned nothing; run stopped",
            {self.stuck_metric: value},
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = _loss_of(outputs)
        if loss is None:
            return
        value = float(loss.detach())
        bad = not (math.isfinite(value) and value <= self.max_loss)
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        self._stop(
            trainer,
            f"loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step}; run stopped",
            {"train/loss": value},
        )

    @staticmethod
    def _stop(trainer: L.Trainer, message: str, values: dict[str, float]) -> None:
        """Report ``diverged`` (where, and the values that said so) to the run's record, then stop the run."""
        record = RunRecord.find(trainer)
        if record is not None:  # a Trainer built by hand may have none
            stopped_at = {"epoch": trainer.current_epoch, "step": trainer.global_step, **values}
            record.set_status("diverged", message, stopped_at=stopped_at)
        raise TrainingDiverged(message)
