"""SimpleNN-3, the small CNN of lab 2 (layer analysis), built from the project's own layers.

Input 3x32x32. conv 5x5 -> 16 ch, pad 2; maxpool k4 s2; conv 3x3 -> 16, pad 2; maxpool k3 s2;
conv 7x7 -> 32, pad 2; maxpool k2 s2; flatten; FC -> 32; FC -> classes. ReLU after every conv and FC;
the lab text puts one after the last FC too, which clips the logits, so that one is opt-in
(``relu_on_logits=True``). Convs have no bias, as in the reference.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge
from torch import nn

from dllabs.config_types import AtLeast1
from dllabs.errors import ConfigError
from dllabs.nets import layers

CONV_SPECS = ((5, 16, 2), (3, 16, 2), (7, 32, 2))  # (kernel, out channels, padding) of conv1..conv3
POOL_SPECS = ((4, 2), (3, 2), (2, 2))  # (kernel, stride) of pool1..pool3


def _feature_size(input_size: int) -> int:
    """Side length of the last feature map for a square ``input_size`` input."""
    size = input_size
    for (kernel, _, padding), (pool_kernel, pool_stride) in zip(CONV_SPECS, POOL_SPECS):
        size = size + 2 * padding - kernel + 1
        size = (size - pool_kernel) // pool_stride + 1
        if size < 1:
            raise ConfigError(
                f"input_size={input_size} is too small for SimpleNN-3 (feature map vanishes); use >= 16"
            )
    return size


class SimpleNN3(nn.Module):
    """Three conv + max-pool stages and two fully-connected layers, using ``dllabs.nets.layers``.

    ``builtin_layers=True`` builds the same net from ``nn.Conv2d``/``nn.Linear`` (same parameter names,
    so state dicts interchange).
    """

    def __init__(
        self,
        num_classes: AtLeast1 = 10,
        in_channels: AtLeast1 = 3,
        input_size: Annotated[int, Ge(16)] = 32,
        hidden: AtLeast1 = 32,
        conv_bias: bool = False,
        builtin_layers: bool = False,
        relu_on_logits: bool = False,
    ) -> None:
        super().__init__()
        conv_cls = nn.Conv2d if builtin_layers else layers.Conv2d
        linear_cls = nn.Linear if builtin_layers else layers.Linear
        channels = in_channels
        for index, ((kernel, out_channels, padding), (pool_kernel, pool_stride)) in enumerate(
            zip(CONV_SPECS, POOL_SPECS), start=1
        ):
            self.add_module(
                f"conv{index}", conv_cls(channels, out_channels, kernel, padding=padding, bias=conv_bias)
            )
            self.add_module(f"pool{index}", nn.MaxPool2d(pool_kernel, pool_stride))
            channels = out_channels
        side = _feature_size(input_size)
        self.fc1 = linear_cls(channels * side * side, hidden)
        self.fc2 = linear_cls(hidden, num_classes)
        self.relu = nn.ReLU()
        self.relu_on_logits = relu_on_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu(self.conv1(x)))
        x = self.pool2(self.relu(self.conv2(x)))
        x = self.pool3(self.relu(self.conv3(x)))
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        logits = self.fc2(x)
        return self.relu(logits) if self.relu_on_logits else logits
