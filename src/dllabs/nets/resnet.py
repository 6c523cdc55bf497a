"""ResNet for CIFAR-10 as in He et al. 2016 ("Deep Residual Learning for Image Recognition"), section 4.2.

The network takes 32x32 images. The first layer is a 3x3 convolution to 16 channels. Then come three stages
of ``n`` basic blocks each, on feature maps of 32x32, 16x16 and 8x8 with 16, 32 and 64 channels; the first
block of the second and third stage halves the map with stride 2. A basic block is two 3x3 convolutions, each
followed by batch normalisation, with a ReLU after the first and after the addition of the shortcut. The
network ends with global average pooling and a 10-way fully-connected layer: ``6n + 2`` weighted layers in
all (n = 3, 5, 7, 9 give ResNet-20, 32, 44, 56).

Where a block changes the shape, the shortcut is either

- option ``A`` (the paper's choice on CIFAR, no extra parameters): the identity subsampled with stride 2 and
  padded with zero channels, or
- option ``B``: a 1x1 convolution with stride 2 followed by batch normalisation (a projection).

Every other shortcut is the identity. Convolutions have no bias (batch normalisation follows each one) and
are initialised as in He et al. 2015 (normal, std ``sqrt(2 / fan_in)``), as in the paper.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Predicate
from torch import nn

from dllabs.config_types import AtLeast1

Shortcut = Literal["A", "B"]


def six_n_plus_two(depth: int) -> bool:  # its docstring is the error message's "must be ..."
    """6n+2 with n >= 1 (20, 32, 44, 56, 110)."""
    return depth >= 8 and (depth - 2) % 6 == 0


Depth = Annotated[int, Predicate(six_n_plus_two)]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: keep every ``stride``-th pixel and append zero channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Option B: a strided 1x1 convolution and batch normalisation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: Shortcut) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = projection_shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet of depth ``6n + 2`` with option-A or option-B shortcuts.

    Args:
        depth: number of weighted layers, 6n + 2 (20, 32, 44, 56, 110, ...).
        shortcut: ``"A"`` (zero-padded identity) or ``"B"`` (1x1 projection) where the shape changes.
        num_classes: outputs of the final fully-connected layer.
        in_channels: channels of the input images.
        width: channels of the first stage; the later stages use 2x and 4x (16 in the paper).
    """

    def __init__(
        self,
        depth: Depth = 20,
        shortcut: Shortcut = "A",
        num_classes: AtLeast1 = 10,
        in_channels: AtLeast1 = 3,
        width: AtLeast1 = 16,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.shortcut = shortcut
        blocks_per_stage = (depth - 2) // 6
        widths = (width, 2 * width, 4 * width)

        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        stages = []
        channels = width
        for index, stage_width in enumerate(widths):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, stage_width, stride, shortcut))
                channels = stage_width
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)
