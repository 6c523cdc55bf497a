"""Exponential moving average of the weights: Lightning's ``EMAWeightAveraging``, safe to test after fitting."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeights(EMAWeightAveraging):
    """``EMAWeightAveraging`` whose averaged weights are also what ``trainer.test(ckpt_path=...)`` evaluates.

    Lightning's callback saves the averaged weights as the checkpoint's ``state_dict`` (the raw ones under
    ``current_model_state``), validates with them, and restores the raw ones when a fit resumes. But once a fit
    has run, the same callback object also replaces the loaded averaged weights by the raw ones when the trainer
    then tests or predicts from a checkpoint (Lightning 2.6), so a run's test metric would be the raw net's. Here
    the raw weights are restored only when fitting resumes.
    """

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
