"""Classification of images or token sequences with cross-entropy and torchmetrics accuracy."""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from dllabs.config_types import DropRate
from dllabs.errors import ConfigError
from dllabs.tasks.base import BaseTask, OptimizerFactory, Regularizer, SchedulerFactory


class ClassificationTask(BaseTask):
    """Train ``net`` to classify; a batch is a tuple whose last element is the target.

    The other elements are passed to ``net(*inputs)``: ``(images, labels)`` for CIFAR,
    ``(tokens, lengths, labels)`` for IMDB. ``tta_flip`` (images only) makes validation, test and prediction use
    the mean of the logits of each image and of its horizontal mirror; training is unchanged.
    """

    # what this task logs (the choices of optimized_metric, checked before a run starts)
    logged_metrics: ClassVar[tuple[str, ...]] = (
        "train/loss", "train/loss_step", "train/acc", "train/penalty", "val/loss", "val/acc", "test/loss", "test/acc"
    )

    def __init__(
        self,
        net: nn.Module,
        num_classes: Annotated[int, Ge(2)],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
        label_smoothing: DropRate = 0.0,
        tta_flip: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, regularizer)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "regularizer"])
        self.net = net
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.train_loss = MeanMetric(nan_strategy="disable")  # synced once per epoch, NaN kept visible
        self.train_penalty = MeanMetric(nan_strategy="disable")
        self._epoch_metrics_logged: int | None = None
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    @property
    def chance_level(self) -> float:
        """Accuracy of guessing on balanced classes (CIFAR-10, IMDB): a run stuck there has learned nothing."""
        return 1.0 / self.hparams.num_classes

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
        loss, logits, target = self._shared_step(batch)
        size = target.shape[0]
        if self.regularizer is not None:
            penalty = self.regularization(self.net)
            loss = loss + penalty
            self.train_penalty.update(penalty.detach().expand(size))
        # Per step only the loss is logged (progress bar, TensorBoard; log_step_value: when one of them reads it).
        # The epoch values come from metrics that are only updated here and registered with self.log once per
        # epoch: Lightning computes (and syncs) a logged metric at the epoch's end from all its updates, while each
        # self.log call costs a walk of the logged object (Metric.to(device)) and a metric's forward a second,
        # batch-only computation; together they were about 10% of a SimpleNN step on a CPU
        # (benchmarks/bench_cifar.py).
        self.log_step_value("train/loss_step", loss.detach(), size)
        # one value per example: MeanMetric(nan_strategy='disable') ignores `weight` (torchmetrics 1.9)
        self.train_loss.update(loss.detach().expand(size))
        self.train_acc.update(logits.detach(), target)
        if self._epoch_metrics_logged != self.current_epoch:  # first step of the epoch (a resumed one too)
            self._epoch_metrics_logged = self.current_epoch
            epoch = {"on_step": False, "on_epoch": True, "batch_size": size}
            self.log("train/loss", self.train_loss, prog_bar=True, **epoch)  # the epoch mean (debug=overfit monitors it)
            self.log("train/acc", self.train_acc, prog_bar=True, **epoch)
            if self.regularizer is not None:
                self.log("train/penalty", self.train_penalty, **epoch)
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
