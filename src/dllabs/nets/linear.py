"""The LMS lab's linear filter: ``y = w . x`` with the bias folded into the input as a constant 1.

The lab writes the input as ``[1, x1, x2]`` and the weights as ``[w0, w1, w2]``, so the bias is ``w0`` and the
layer itself has no separate bias term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dllabs.config_types import AtLeast1
from dllabs.errors import ConfigError


class LinearFilter(nn.Module):
    """A single linear output over ``in_features`` inputs, no bias term (the bias is an input column of ones).

    ``initial_weights`` sets the start point (the lab's reference is ``[0.53, 0.20, 0.10]``); ``None`` keeps
    PyTorch's default ``nn.Linear`` initialisation.
    """

    def __init__(self, in_features: AtLeast1 = 3, initial_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1, bias=False)
        if initial_weights is not None:
            values = [float(v) for v in initial_weights]
            if len(values) != in_features:
                raise ConfigError(
                    f"model.net.initial_weights has {len(values)} values but the filter has "
                    f"{in_features} inputs; give {in_features} values (bias weight first) or set "
                    "model.net.in_features to match"
                )
            with torch.no_grad():
                self.linear.weight.copy_(torch.tensor(values).unsqueeze(0))

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def weight_vector(self) -> torch.Tensor:
        """The weights as a flat ``(in_features,)`` tensor, bias weight first."""
        return self.linear.weight.detach().flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_features) -> (N,)``."""
        return self.linear(x).squeeze(-1)
