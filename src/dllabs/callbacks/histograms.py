"""TensorBoard histograms of every trainable parameter and its gradient, once per epoch (opt-in).

Turn it on with ``callbacks=histograms`` (conf/callbacks/histograms.yaml). Tags are ``weights/<name>`` and
``gradients/<name>`` at the trainer's global step. Gradients are those of the epoch's last optimiser step,
taken just before that step (after accumulation and AMP unscaling).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn


class WeightHistograms(L.Callback):
    """Log weight (and gradient) histograms to every TensorBoard logger of the trainer.

    ``every_n_epochs``: log on epochs 0, n, 2n, ...; ``gradients``: also log gradients;
    ``include_biases``: also log 1-D parameters (biases, norm scales).
    """

    def __init__(self, every_n_epochs: int = 1, gradients: bool = True, include_biases: bool = True) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.gradients = gradients
        self.include_biases = include_biases
        self._warned = False

    def _writers(self, trainer: L.Trainer) -> list:
        writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not writers and not self._warned:
            rank_zero_warn(
                "WeightHistograms needs a TensorBoard logger (logger=tensorboard); logging nothing."
            )
            self._warned = True
        return writers

    def _due(self, trainer: L.Trainer) -> bool:
        return trainer.is_global_zero and trainer.current_epoch % self.every_n_epochs == 0

    def _named_parameters(self, pl_module: L.LightningModule) -> list[tuple[str, torch.nn.Parameter]]:
        return [
            (name, p)
            for name, p in pl_module.named_parameters()
            if p.requires_grad and (self.include_biases or p.ndim > 1)
        ]

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not (self.gradients and trainer.is_last_batch and self._due(trainer)):
            return
        writers = self._writers(trainer)
        for name, param in self._named_parameters(pl_module):
            if param.grad is None:
                continue
            grad = param.grad.detach().float().cpu()
            for writer in writers:
                writer.add_histogram(f"gradients/{name}", grad, trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._due(trainer):
            return
        writers = self._writers(trainer)
        for name, param in self._named_parameters(pl_module):
            values = param.detach().float().cpu()
            for writer in writers:
                writer.add_histogram(f"weights/{name}", values, trainer.global_step)
