"""What ClassificationTask logs in training: the step loss on the progress bar and the epoch's loss, accuracy
and penalty, computed over all the epoch's batches (weighted by batch size)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dllabs.regularizers import L2
from dllabs.tasks.classification import ClassificationTask


def frozen_sgd(params):
    return torch.optim.SGD(params, lr=0.0)  # weights stay put: the epoch values can be recomputed afterwards


class StepLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        assert "train/loss_step" in trainer.progress_bar_metrics


@pytest.mark.parametrize("with_penalty", [False, True])
def test_epoch_loss_accuracy_and_penalty_cover_every_batch(with_penalty):
    torch.manual_seed(0)
    images, labels = torch.randn(22, 6), torch.randint(0, 3, (22,))  # batches of 8, 8, 6
    net = nn.Linear(6, 3)
    regularizer = L2(0.01) if with_penalty else None
    task = ClassificationTask(net, num_classes=3, optimizer=frozen_sgd, regularizer=regularizer)
    steps = StepLosses()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[steps],
    )
    trainer.fit(task, DataLoader(TensorDataset(images, labels), batch_size=8))
    metrics = trainer.callback_metrics
    with torch.no_grad():
        logits = net(images)
    penalty = float(regularizer(net)) if with_penalty else 0.0
    expected_loss = F.cross_entropy(logits, labels).item() + penalty
    assert len(steps.losses) == 6
    assert metrics["train/loss"].item() == pytest.approx(expected_loss, rel=1e-5)
    assert metrics["train/acc"].item() == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert metrics["train/loss_step"].item() == pytest.approx(steps.losses[-1], rel=1e-6)
    assert {"train/loss_step", "train/loss", "train/acc"} <= set(trainer.progress_bar_metrics)
    if with_penalty:
        assert metrics["train/penalty"].item() == pytest.approx(penalty, rel=1e-5)
    else:
        assert "train/penalty" not in metrics
