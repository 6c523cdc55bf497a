"""What a datamodule hands to ``predict.py``: a loader over user inputs plus their identities."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader


@dataclass
class PredictionData:
    """Inputs to predict, in input order.

    ``loader`` yields batches in the training layout (the target is -1 where unknown); ``ids`` names each
    row (0..N-1 or file names); ``labels`` holds true classes when the source has them, for an accuracy report;
    ``texts`` keeps raw inputs for text tasks so predictions can be shown next to them.
    """

    loader: DataLoader
    ids: list[str]
    labels: torch.Tensor | None = None
    texts: list[str] | None = None
