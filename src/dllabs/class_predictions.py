"""A trained classifier's predictions: class probabilities over a loader, and the confusion-matrix figure.

Shared by ``predict.py`` (:mod:`dllabs.predicting`), the sentiment analysis and the results ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import matplotlib
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from dllabs.errors import ConfigError
from dllabs.lightning_console import silence_lightning_tips

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def predict_probabilities(
    task, loader, accelerator: str = "auto", root_dir: str | Path | None = None
) -> torch.Tensor:
    """Class probabilities (N, classes) of ``task.predict_step`` over ``loader``, in loader order."""
    silence_lightning_tips()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(root_dir) if root_dir else None,
    )
    batches = trainer.predict(task, dataloaders=loader)
    if not batches:
        raise ConfigError("the input holds nothing to predict")
    return torch.cat([b.float().cpu() for b in batches])


def save_confusion_matrix(
    labels: torch.Tensor, predicted: torch.Tensor, names: Sequence[str], path: Path
) -> Path:
    """Counts of true (rows) vs predicted (columns) classes, as a figure."""
    metric = MulticlassConfusionMatrix(num_classes=len(names))
    metric.update(predicted, labels)
    size = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    metric.plot(ax=ax, labels=list(names))
    ax.set_title(f"confusion matrix ({len(labels)} inputs)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
