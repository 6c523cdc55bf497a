"""torchvision v2 transform pipelines for uint8 CHW image tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2


def cifar_eval_transform(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """uint8 image -> normalised float32."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def cifar_train_transform(augment: str, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """The evaluation pipeline, preceded by random crop 32 (zero padding 4) + horizontal flip for ``crop_flip``."""
    steps: list[v2.Transform] = []
    if augment == "crop_flip":
        steps += [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]
    return v2.Compose([*steps, cifar_eval_transform(mean, std)])
