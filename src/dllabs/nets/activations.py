"""Activation functions selectable by name in net configs."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn


class Swish(nn.Module):
    """Swish ``x * sigmoid(x)`` (Ramachandran et al. 2017; equal to SiLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


Activation = Literal["relu", "swish"]  # the names a net config may give
ACTIVATIONS: dict[str, type[nn.Module]] = dict(zip(get_args(Activation), (nn.ReLU, Swish), strict=True))


def make_activation(name: Activation) -> nn.Module:
    """A fresh activation module by config name (``relu`` or ``swish``)."""
    return ACTIVATIONS[name]()
