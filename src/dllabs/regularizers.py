"""Weight penalties added to the training loss.

Both penalties act on the *non-bias weights* only: parameters with two or more dimensions (conv kernels,
linear and embedding matrices). Biases and normalisation scales/shifts are left alone.

- ``L1``: ``strength * sum |w|``.
- ``L2``: ``strength / 2 * sum w^2``, whose gradient ``strength * w`` equals what SGD's coupled
  ``weight_decay=strength`` adds to those weights. For decoupled decay use ``optimizer=adamw`` with
  ``optimizer.weight_decay`` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from dllabs.config_types import NonNegative


def penalized_parameters(module: nn.Module) -> list[torch.Tensor]:
    """The trainable parameters a penalty applies to: weights with at least two dimensions."""
    return [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]


class WeightPenalty(ABC):
    """``strength * sum(term(w))`` over the non-bias weights of a module; subclasses define ``term``."""

    def __init__(self, strength: NonNegative) -> None:
        self.strength = float(strength)

    @abstractmethod
    def term(self, weight: torch.Tensor) -> torch.Tensor:
        """The penalty of one weight tensor, before ``strength``."""

    def __call__(self, module: nn.Module) -> torch.Tensor:
        params = penalized_parameters(module)
        if not params or self.strength == 0.0:
            return torch.zeros(())
        return self.strength * sum(self.term(p) for p in params)


class L1(WeightPenalty):
    """Lasso penalty ``strength * sum |w|`` over non-bias weights."""

    def term(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.abs().sum()


class L2(WeightPenalty):
    """Ridge penalty ``strength / 2 * sum w^2`` over non-bias weights (coupled weight decay)."""

    def term(self, weight: torch.Tensor) -> torch.Tensor:
        return 0.5 * weight.pow(2).sum()
