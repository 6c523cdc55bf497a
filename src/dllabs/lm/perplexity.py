"""Perplexity of a causal LM: ``exp(total token NLL / number of predicted tokens)``.

Position ``t`` predicts token ``t+1``; labels equal to ``IGNORE_INDEX`` (padding, the first token of a block,
context-only tokens of a sliding window) are not predicted and do not count.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

IGNORE_INDEX = -100


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL (float32) and the number of predicted tokens for ``logits`` (B, T, V), ``labels`` (B, T)."""
    shift_logits = logits[:, :-1, :].flatten(0, 1).float()
    shift_labels = labels[:, 1:].flatten()
    nll = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return nll, (shift_labels != IGNORE_INDEX).sum()


def perplexity(nll_sum: float | torch.Tensor, count: int | torch.Tensor) -> float:
    """``exp(nll_sum / count)``; ``nan`` when nothing was predicted."""
    count = float(count)
    return math.exp(float(nll_sum) / count) if count > 0 else math.nan


class TokenNLL(Metric):
    """Token-weighted mean NLL over an epoch (summed across batches and processes); ``exp`` of it is perplexity."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("nll_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, nll_sum: torch.Tensor, count: torch.Tensor) -> None:
        self.nll_sum += nll_sum.detach().to(torch.float64)
        self.count += count.detach().to(torch.long)

    def compute(self) -> torch.Tensor:
        return (self.nll_sum / self.count.clamp(min=1)).float()


def causal_lm_logits(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a Hugging Face causal LM for a batch holding ``input_ids`` and optionally ``attention_mask``."""
    return model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    device: torch.device | str = "cpu",
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Perplexity of ``model`` over ``batches`` (dicts with input_ids, attention_mask, labels).

    ``autocast`` makes the context each forward pass runs in (e.g. the trainer's mixed-precision context).
    """
    was_training = model.training
    model.eval()
    nll_sum, count = 0.0, 0
    try:
        for batch in batches:
            batch = {key: value.to(device) for key, value in batch.items()}
            with autocast():
                logits = causal_lm_logits(model, batch)
            nll, n = token_nll(logits, batch["labels"])
            nll_sum += float(nll)
            count += int(n)
    finally:
        model.train(was_training)
    return {"ppl": perplexity(nll_sum, count), "nll_sum": nll_sum, "tokens": count}


@torch.no_grad()
def sliding_window(
    model: nn.Module,
    token_ids: torch.Tensor,
    window: int,
    stride: int,
    device: torch.device | str = "cpu",
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Perplexity of one long token stream scored in windows of ``window`` tokens moved by ``stride``.

    Each window predicts only the tokens not scored by the previous one, so every token after the first is
    counted once and sees up to ``window - stride`` tokens of context (the standard WikiText evaluation;
    ``stride == window`` gives disjoint blocks).
    """
    if not 0 < stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}), got {stride}")
    was_training = model.training
    model.eval()
    ids = token_ids.flatten().to(device)
    nll_sum, count, scored_until = 0.0, 0, 0
    try:
        for begin in range(0, max(1, ids.numel() - 1), stride):
            end = min(begin + window, ids.numel())
            inputs = ids[begin:end].unsqueeze(0)
            labels = inputs.clone()
            labels[:, : max(0, scored_until - begin)] = IGNORE_INDEX
            with autocast():
                logits = model(input_ids=inputs).logits
            nll, n = token_nll(logits, labels)
            nll_sum += float(nll)
            count += int(n)
            scored_until = end
            if end == ids.numel():
                break
    finally:
        model.train(was_training)
    return {"ppl": perplexity(nll_sum, count), "nll_sum": nll_sum, "tokens": count}
