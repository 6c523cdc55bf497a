"""A Dataset over uint8 NCHW image tensors held in memory, with a per-image transform (CIFAR training and
prediction inputs alike)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class ImageTensorDataset(Dataset):
    """uint8 NCHW images with integer labels and a per-image transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
