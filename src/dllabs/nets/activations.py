"""Activation functions selectable by name in net configs."""

from __future__ import annotations

import torch
from torch import nn

from dllabs.errors import ConfigError


class Swish(nn.Module):
    """Swish ``x * sigmoid(x)`` (Ramachandran et al. 2017; equal to SiLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "swish": Swish}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by config name (``relu`` or ``swish``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"model.net.activation={name}: choose one of {', '.join(ACTIVATIONS)}") from None
