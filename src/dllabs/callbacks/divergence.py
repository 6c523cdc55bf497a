"""Stop a run whose training loss is no longer finite, so a sweep records it as diverged and goes on."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from dllabs.errors import TrainingDiverged


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class DivergenceGuard(L.Callback):
    """Raise :class:`TrainingDiverged` when ``training_step`` returns a NaN/inf loss or it exceeds ``max_loss``."""

    def __init__(self, max_loss: float = math.inf) -> None:
        self.max_loss = max_loss
        self.diverged_at: dict[str, Any] | None = None

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
        self.diverged_at = {"epoch": trainer.current_epoch, "step": trainer.global_step, "loss": value}
        raise TrainingDiverged(
            f"loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step}; run stopped"
        )
