"""SimpleNN, the LeNet-5-style CIFAR-10 net of lab 3: 2 conv, 2 max-pool, 3 fully-connected layers.

conv 5x5 3->8 (no padding), pool 2, conv 3x3 8->16, pool 2, FC 576->120->84->10: 82,030 parameters.
``norm="batchnorm"`` adds BatchNorm after each conv; ``activation="swish"`` swaps ReLU for Swish (lab 4).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dllabs.config_types import AtLeast1
from dllabs.nets.activations import Activation, make_activation


class SimpleNN(nn.Module):
    def __init__(
        self, num_classes: AtLeast1 = 10, norm: Literal["none", "batchnorm"] = "none", activation: Activation = "relu"
    ) -> None:
        super().__init__()

        def conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel)]
            if norm == "batchnorm":
                layers.append(nn.BatchNorm2d(c_out))
            return [*layers, make_activation(activation), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*conv_block(3, 8, 5), *conv_block(8, 16, 3))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 6 * 6, 120),
            make_activation(activation),
            nn.Linear(120, 84),
            make_activation(activation),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
