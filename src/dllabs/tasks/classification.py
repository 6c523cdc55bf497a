"""Classification of images or token sequences with cross-entropy and torchmetrics accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from dllabs.errors import ConfigError
from dllabs.tasks.base import BaseTask, OptimizerFactory, Regularizer, SchedulerFactory


class ClassificationTask(BaseTask):
    """Train ``net`` to classify; a batch is a tuple whose last element is the target.

    The other elements are passed to ``net(*inputs)``: ``(images, labels)`` for CIFAR,
    ``(tokens, lengths, labels)`` for IMDB. ``tta_flip`` (images only) makes validation, test and prediction use
    the mean of the logits of each image and of its horizontal mirror; training is unchanged.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
        label_smoothing: float = 0.0,
        tta_flip: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, regularizer)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "regularizer"])
        self.net = net
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.train_loss = MeanMetric(nan_strategy="disable")  # synced once per epoch, NaN kept visible
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*inputs)

    def evaluation_logits(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Logits for validation/test/prediction: with ``tta_flip``, the mean over the image and its mirror."""
        logits = self(*inputs)
        if not self.tta_flip:
            return logits
        images, *rest = inputs
        if images.dim() != 4:
            raise ConfigError(
                f"model.tta_flip needs image batches [N, C, H, W]; got inputs of shape {tuple(images.shape)}"
            )
        return (logits + self(images.flip(-1), *rest)) / 2

    def _shared_step(
        self, batch: tuple[torch.Tensor, ...], evaluation: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        *inputs, target = batch
        logits = self.evaluation_logits(*inputs) if evaluation else self(*inputs)
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        return loss, logits, target

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        data_loss, logits, target = self._shared_step(batch)
        penalty = self.regularization(self.net)
        loss = data_loss + penalty
        self.train_acc(logits, target)
        size = target.shape[0]
        self.train_loss(loss.detach(), weight=size)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        if self.regularizer is not None:
            self.log("train/penalty", penalty, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        loss, logits, target = self._shared_step(batch, evaluation=True)
        self.val_acc(logits, target)
        self.log("val/loss", loss, prog_bar=True, batch_size=target.shape[0], sync_dist=True)
        self.log("val/acc", self.val_acc, prog_bar=True, batch_size=target.shape[0])

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        loss, logits, target = self._shared_step(batch, evaluation=True)
        self.test_acc(logits, target)
        self.log("test/loss", loss, batch_size=target.shape[0], sync_dist=True)
        self.log("test/acc", self.test_acc, batch_size=target.shape[0])

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Class probabilities. Batches have the training layout; unlabelled data carries target -1."""
        *inputs, _ = batch
        return torch.softmax(self.evaluation_logits(*inputs), dim=-1)
