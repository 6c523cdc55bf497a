"""Loaders whose randomness depends only on (seed, epoch), so a resumed run sees the same batches.

Two things in ``torch.utils.data.DataLoader`` tie an epoch's randomness to the moment its iterator is created:
``iter(loader)`` draws the workers' base seed from ``loader.generator`` (from the *global* torch RNG when the
loader has none), and with workers it already takes the first indices from the sampler. Lightning creates the
training iterator of a resumed run early (in ``setup_data``, before ``set_epoch`` is called for the epoch it
resumes, and it does not create it again), and a restart runs a sanity check whose loaders are iterated after
the RNG state was restored. A resumed epoch would then replay epoch 0's order and augmentation (with workers),
or shift every later dropout/augmentation draw by one (loaders without a generator).

:class:`EpochLoader` starts its iterator at the first batch, after the epoch has been set, and
:func:`seeded_loader` gives every loader its own generator, so creating an iterator never touches the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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


class _StartedOnFirstBatch:
    """An iterator that calls ``start()`` for the real one only when the first item is asked for."""

    def __init__(self, start: Callable[[], Iterator[Any]]) -> None:
        self._start = start
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> _StartedOnFirstBatch:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator)


class EpochLoader(DataLoader):
    """A DataLoader whose iterator (worker seeds, first indices) is created at the first batch, not at ``iter()``."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return _StartedOnFirstBatch(super().__iter__)


def seeded_loader(dataset: Dataset, seed: int, shuffle: bool, **kwargs: Any) -> EpochLoader:
    """An :class:`EpochLoader` with its own generator, shuffled per epoch by an :class:`EpochSeededSampler`."""
    generator = torch.Generator().manual_seed(seed)
    sampler = EpochSeededSampler(len(dataset), seed, generator) if shuffle else None
    return EpochLoader(dataset, sampler=sampler, generator=generator, **kwargs)
