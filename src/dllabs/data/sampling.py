"""A shuffling sampler whose order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSeededSampler(Sampler[int]):
    """Random permutation of ``range(n)`` drawn from ``seed + epoch``; Lightning calls ``set_epoch``.

    ``loader_generator`` (optional) is re-seeded too: a DataLoader built with it draws its worker seeds from it,
    so per-worker augmentation is reproducible per epoch as well.
    """

    def __init__(self, n: int, seed: int, loader_generator: torch.Generator | None = None) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0
        self.loader_generator = loader_generator
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.loader_generator is not None:
            self.loader_generator.manual_seed(self.seed * 1_000_003 + epoch + 1)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n
