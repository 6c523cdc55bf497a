"""Learning-rate schedules, all stepped once per optimizer step, each with an optional linear warm-up.

A scheduler config is a partial of one of these functions (``_partial_: true``); the task completes it with
``total_steps`` and ``steps_per_epoch`` from the trainer, so epoch-based settings (``step_epochs``) and
fraction-based ones (``milestones``) mean the same thing whatever the dataset size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated

from annotated_types import Ge, Le
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from dllabs.config_types import AtLeast0, AtLeast1, OpenFraction, Positive


def _with_warmup(factor: Callable[[int], float], warmup_steps: int) -> Callable[[int], float]:
    def scaled(step: int) -> float:
        warm = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
        return warm * factor(step)

    return scaled


def _lambda(optimizer: Optimizer, factor: Callable[[int], float], warmup_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, _with_warmup(factor, int(warmup_steps)))


def constant(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int, warmup_steps: AtLeast0 = 0) -> LRScheduler:
    """Fixed learning rate (after the warm-up)."""
    return _lambda(optimizer, lambda step: 1.0, warmup_steps)


def step(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    step_epochs: AtLeast1 = 5,
    gamma: Positive = 0.5,
    warmup_steps: AtLeast0 = 0,
) -> LRScheduler:
    """Multiply the learning rate by ``gamma`` every ``step_epochs`` epochs."""
    every = max(1, int(step_epochs) * steps_per_epoch)
    return _lambda(optimizer, lambda s: gamma ** (s // every), warmup_steps)


def multistep(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    milestones: Sequence[OpenFraction] = (0.5, 0.75),
    gamma: Positive = 0.1,
    warmup_steps: AtLeast0 = 0,
) -> LRScheduler:
    """Multiply by ``gamma`` at each milestone, given as a fraction of the whole run (0.5 = half-way)."""
    at = sorted(round(m * total_steps) for m in milestones)
    return _lambda(optimizer, lambda s: gamma ** sum(s >= m for m in at), warmup_steps)


def cosine(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    min_factor: Annotated[float, Ge(0), Le(1)] = 0.0,
    warmup_steps: AtLeast0 = 0,
) -> LRScheduler:
    """Cosine decay from the base rate to ``min_factor`` times it over the steps after the warm-up."""
    span = max(1, total_steps - int(warmup_steps))

    def factor(s: int) -> float:
        progress = min(1.0, max(0, s - warmup_steps) / span)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return _lambda(optimizer, factor, warmup_steps)


def linear(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    end_factor: Annotated[float, Ge(0), Le(1)] = 0.0,
    warmup_steps: AtLeast0 = 0,
) -> LRScheduler:
    """Linear decay to ``end_factor`` times the base rate after the warm-up (the transformers default)."""
    span = max(1, total_steps - int(warmup_steps))

    def factor(s: int) -> float:
        progress = min(1.0, max(0, s - warmup_steps) / span)
        return 1.0 - (1.0 - end_factor) * progress

    return _lambda(optimizer, factor, warmup_steps)


def onecycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    pct_start: OpenFraction = 0.25,
    div_factor: Positive = 25.0,
    final_div_factor: Positive = 1e4,
) -> LRScheduler:
    """Smith's one-cycle policy peaking at the optimizer's configured learning rate."""
    peaks = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer,
        max_lr=peaks,
        total_steps=max(2, total_steps),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
