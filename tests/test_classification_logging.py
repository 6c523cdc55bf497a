"""What ClassificationTask logs in training: the step loss on the progress bar and to the loggers (on the steps they
read it, and only then), and the epoch's loss, accuracy and penalty, computed over all the epoch's batches
(weighted by batch size)."""

from __future__ import annotations

import csv

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
        assert trainer.progress_bar_metrics["train/loss_step"] == pytest.approx(self.losses[-1], rel=1e-6)


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
        enable_progress_bar=True,  # the bar shows every step's loss
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


class LogsEveryStep(ClassificationTask):
    """The task as it was: the step loss logged on every step, whoever reads it."""

    def step_value_shown(self) -> bool:
        return True


class CountsStepLogs(ClassificationTask):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.step_logs = 0

    def log(self, name, *args, **kwargs) -> None:
        self.step_logs += name == "train/loss_step"
        super().log(name, *args, **kwargs)


class StopsAt(L.Callback):
    """Stops the run in a batch's end hooks, as ``max_time`` does: off the logging interval."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx = batch_idx

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch_idx:
            trainer.should_stop = True


def written_step_losses(
    task_class, folder, accumulate: int, callbacks=()
) -> tuple[list[tuple[str, str]], ClassificationTask]:
    torch.manual_seed(0)
    images, labels = torch.randn(40, 6), torch.randint(0, 3, (40,))
    task = task_class(nn.Linear(6, 3), num_classes=3, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        log_every_n_steps=3,
        accumulate_grad_batches=accumulate,
        logger=L.pytorch.loggers.CSVLogger(folder, name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(task, DataLoader(TensorDataset(images, labels), batch_size=4))  # 10 batches an epoch
    with open(f"{folder}/metrics.csv") as rows:
        written = [(row["step"], row["train/loss_step"]) for row in csv.DictReader(rows) if row["train/loss_step"]]
    return written, task


@pytest.mark.parametrize("accumulate", [1, 2])
def test_loggers_get_the_same_step_losses_with_one_log_call_per_written_step(tmp_path, accumulate):
    """Without a progress bar the step loss is logged only on the steps a logger writes (every log_every_n_steps
    optimiser steps): the written points are exactly those of logging it on every step, for far fewer calls."""
    reference, _ = written_step_losses(LogsEveryStep, tmp_path / "every", accumulate)
    written, task = written_step_losses(CountsStepLogs, tmp_path / "shown", accumulate)
    assert written == reference
    assert len(written) >= 2
    # each micro-batch of a written optimiser step is logged, as Lightning writes after each of them
    assert task.step_logs == accumulate * len(written) < 20


def test_without_bar_or_logger_the_step_loss_is_not_logged():
    task = CountsStepLogs(nn.Linear(6, 3), num_classes=3, optimizer=frozen_sgd)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, DataLoader(TensorDataset(torch.randn(16, 6), torch.randint(0, 3, (16,))), batch_size=4))
    assert task.step_logs == 0
    assert {"train/loss", "train/acc"} <= set(trainer.callback_metrics)


@pytest.mark.parametrize("stop_at", [2, 4])  # on the interval (every 3rd step) and off it
def test_a_run_stopped_off_the_interval_still_writes_its_last_step_loss(tmp_path, stop_at):
    """Lightning writes the stopping step's values to the loggers whatever the interval: so does the task."""
    reference, _ = written_step_losses(LogsEveryStep, tmp_path / "every", 1, [StopsAt(stop_at)])
    written, _ = written_step_losses(CountsStepLogs, tmp_path / "shown", 1, [StopsAt(stop_at)])
    assert written == reference
    assert written[-1][0] == str(stop_at)  # the stopping step (global step stop_at + 1, logged as stop_at)
