"""Regression trained one sample at a time (LMS).

Each training batch (the LMS datamodule gives one per epoch: the whole dataset) is walked sample by sample inside
one Lightning step: for every sample the optimizer takes one step on ``e^2 / 2`` with ``e = d - y``. With
``optimizer=sgd`` (no momentum, no weight decay) and a linear net that is exactly the LMS rule
``w <- w + r e x`` with ``r = optimizer.lr``; other optimizers and a regularizer (leaky LMS) work the same way.

After the batch the task logs the MSE over it (``train/mse``; the whole-dataset MSE when the batch is the
dataset) and returns it as the step's loss, so the divergence guard stops a run whose MSE is no longer finite.
``mse`` picks how every reported MSE is scaled (``mean`` or ``half_mean``); the update rule does not depend on it.
What the lab reports (the Wiener solution, the MSE history, the figures) is the
:class:`dllabs.callbacks.lms.LMSReport` callback's.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from dllabs.analysis.lms import MSE_SCALES, MSEConvention
from dllabs.tasks.base import BaseTask, OptimizerFactory, Regularizer, SchedulerFactory


class RegressionTask(BaseTask):
    """Fit ``net`` to targets with one optimizer step per sample; batches are ``(inputs, targets)``."""

    logged_metrics: ClassVar[tuple[str, ...]] = ("train/mse", "val/mse", "test/mse")  # the optimized_metric choices

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
        mse: MSEConvention = "mean",
    ) -> None:
        super().__init__(optimizer, scheduler, regularizer)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "regularizer"])
        self.automatic_optimization = False
        self.net = net
        self.mse_convention = mse

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def mse(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean squared error under the configured convention."""
        return MSE_SCALES[self.mse_convention] * torch.mean((targets - predictions) ** 2)

    def schedule_steps(self) -> tuple[int, int]:
        """A schedule counts one step per training sample (the task steps it after every update).

        ``configure_optimizers`` runs before Lightning builds the training loader; ``setup_data`` builds it now
        (what ``estimated_stepping_batches`` does too) and Lightning reuses it for the epochs.
        """
        self.trainer.fit_loop.setup_data()
        steps_per_epoch = len(self.trainer.train_dataloader.dataset)
        epochs = self.trainer.max_epochs
        if epochs is None or epochs < 0:
            return int(self.trainer.max_steps), steps_per_epoch
        return steps_per_epoch * epochs, steps_per_epoch

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        for sample, target in zip(inputs, targets):
            optimizer.zero_grad()
            error = target - self.net(sample.unsqueeze(0)).squeeze(0)
            loss = 0.5 * error * error
            if self.regularizer is not None:
                loss = loss + self.regularization(self.net)
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        with torch.no_grad():
            epoch_mse = self.mse(self.net(inputs), targets)
        self.log("train/mse", epoch_mse, on_step=False, on_epoch=True, prog_bar=True, batch_size=targets.shape[0])
        return epoch_mse

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        self.log("val/mse", self.mse(self.net(inputs), targets), prog_bar=True, batch_size=targets.shape[0])

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        self.log("test/mse", self.mse(self.net(inputs), targets), batch_size=targets.shape[0])

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self.net(batch[0])
