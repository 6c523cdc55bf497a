"""A CIFAR loader that keeps the whole uint8 dataset on the device and augments whole batches there.

The standard path decodes, crops and flips one image at a time on the CPU and copies every batch to the
device. Here the images live on the device as one ``uint8`` tensor; per batch, one indexing operation does
the random crop (zero padding 4) and the horizontal flip for all images at once, then the batch is turned
into normalised floats. The semantics are those of torchvision v2 ``RandomCrop(32, padding=4)`` followed by
``RandomHorizontalFlip()``, ``ToDtype(float32, scale=True)`` and ``Normalize(mean, std)``: the offsets are
uniform in ``0..2*padding`` and the padding is zero *pixels*, applied before normalisation.

Randomness (order, offsets, flips) is drawn on the CPU from a generator seeded by ``(seed, epoch)``, so an
epoch is the same on every device and after a resume. Lightning calls ``loader.sampler.set_epoch(epoch)``
before each epoch; a plain loop that never calls it gets epochs 0, 1, 2, ... in turn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dllabs.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is the current CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    return torch.device(device)


def crop_flip(
    images: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, flips: torch.Tensor, padding: int
) -> torch.Tensor:
    """Crop each image of ``images`` (B, C, H, W) at (top, left) of its zero-padded copy; mirror where ``flips``.

    ``tops``/``lefts`` are offsets in ``0..2*padding`` into the padded image; the result has the input's size.
    """
    batch, channels, height, width = images.shape
    padded_width = width + 2 * padding
    padded = F.pad(images, (padding, padding, padding, padding)).flatten(2)
    device = images.device
    row_steps = torch.arange(height, device=device)
    col_steps = torch.arange(width, device=device)
    rows = tops.to(device)[:, None] + row_steps
    cols = lefts.to(device)[:, None] + torch.where(flips.to(device)[:, None], col_steps.flip(0), col_steps)
    flat = (rows[:, :, None] * padded_width + cols[:, None, :]).view(batch, 1, height * width)
    return torch.gather(padded, 2, flat.expand(batch, channels, height * width)).view(
        batch, channels, height, width
    )


class EpochSampler:
    """The epoch that seeds a :class:`DeviceLoader`; Lightning finds it as ``loader.sampler`` and sets it."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class DeviceLoader:
    """Iterate ``(x, y)`` batches of a uint8 image set held on ``device``, augmented there per batch.

    Args:
        images: ``uint8`` tensor (N, 3, H, W).
        labels: ``long`` tensor (N,).
        batch_size: images per batch.
        shuffle: a new order every epoch.
        augment: random crop with zero padding ``padding`` and random horizontal flip.
        mean, std: per-channel statistics on the 0..1 scale used to normalise.
        device: where the data lives and batches come out; ``"auto"`` = CUDA if available, else CPU.
        seed: seeds order and augmentation together with the epoch.
        drop_last: drop the last incomplete batch.
        channels_last: return batches in channels-last memory format.
        padding: zero padding of the random crop (4 for CIFAR).

    Under ``torch.distributed`` each process takes every world-size-th sample of the epoch's order (the order
    padded to a multiple of the world size, like ``DistributedSampler``), so all processes see as many batches.
    """

    batch_sampler = None  # Lightning inspects loaders for one; batching happens here

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "auto",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        padding: int = 4,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ConfigError(
                f"DeviceLoader needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}."
            )
        if labels.shape != (images.shape[0],):
            raise ConfigError(
                f"DeviceLoader needs one label per image, got {tuple(labels.shape)} for {images.shape[0]} images."
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        self.device = resolve_device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.long)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.channels_last = bool(channels_last)
        self.padding = int(padding)
        channels = images.shape[1]
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.sampler = EpochSampler()

    @staticmethod
    def _world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _samples_per_process(self) -> int:
        _, world = self._world()
        return math.ceil(len(self.labels) / world)

    def __len__(self) -> int:
        samples = self._samples_per_process()
        return samples // self.batch_size if self.drop_last else math.ceil(samples / self.batch_size)

    def _generator(self, epoch: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """This process's sample order and, per position, crop offsets (top, left) and flip flags, on the CPU."""
        count = len(self.labels)
        generator = self._generator(epoch)
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        rank, world = self._world()
        if world > 1:
            total = self._samples_per_process() * world
            order = torch.cat([order, order[: total - count]])[rank::world]
        offsets = torch.randint(0, 2 * self.padding + 1, (len(order), 2), generator=generator)
        flips = torch.rand(len(order), generator=generator) < 0.5
        return order, offsets[:, 0], offsets[:, 1], flips

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in [0, 1] -> ``(x - mean) / std``, exactly as torchvision v2 ToDtype + Normalize."""
        x = images.to(torch.float32).mul_(1.0 / 255).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.sampler.epoch
        self.sampler.epoch = epoch + 1
        order, tops, lefts, flips = (t.to(self.device) for t in self.epoch_plan(epoch))
        for batch in range(len(self)):
            positions = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            index = order[positions]
            images = self.images[index]
            if self.augment:
                images = crop_flip(images, tops[positions], lefts[positions], flips[positions], self.padding)
            yield self.normalize(images), self.labels[index]
