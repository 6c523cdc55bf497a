"""``Conv2d`` and ``Linear`` written on ``torch.nn.functional``, drop-in replacements for the built-ins.

They take the built-ins' constructor arguments, initialise their parameters the same way (so the same
seed gives the same weights), compute the same outputs and gradients, and use the same parameter names
(``weight``, ``bias``), so state dicts move freely between them and ``nn.Conv2d``/``nn.Linear``.

Each layer also keeps its last input and output (detached, so no autograd graph is held) in
``last_input``/``last_output`` for inspection; set ``layer.record = False`` to stop recording.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init
from torch.nn.modules.utils import _pair

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _kaiming_reset(weight: nn.Parameter, bias: nn.Parameter | None) -> None:
    """PyTorch's default init for conv/linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    with torch.no_grad():
        init.kaiming_uniform_(weight, a=math.sqrt(5))
        if bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(bias, -bound, bound)


class RecordingMixin:
    """Keeps the detached last input and output of ``forward``."""

    record: bool
    last_input: torch.Tensor | None
    last_output: torch.Tensor | None

    def _init_recording(self) -> None:
        self.record = True
        self.last_input = None
        self.last_output = None

    def _remember(self, input: torch.Tensor, output: torch.Tensor) -> None:
        if self.record:
            self.last_input = input.detach()
            self.last_output = output.detach()


class Conv2d(RecordingMixin, nn.Module):
    """2-D convolution on ``F.conv2d`` with the signature and behaviour of ``torch.nn.Conv2d``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        self._check_arguments(in_channels, out_channels, groups, padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.padding_mode = padding_mode
        self.output_padding = (0, 0)
        self.transposed = False
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size, **factory)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self._init_recording()
        self.reset_parameters()

    def _check_arguments(self, in_channels: int, out_channels: int, groups: int, padding_mode: str) -> None:
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                f"groups ({groups})"
            )
        if isinstance(self.padding, str):
            if self.padding not in ("same", "valid"):
                raise ValueError(f"padding string must be 'same' or 'valid', got {self.padding!r}")
            if self.padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")

    def reset_parameters(self) -> None:
        """Re-draw the parameters exactly as ``nn.Conv2d.reset_parameters`` does."""
        _kaiming_reset(self.weight, self.bias)

    def _explicit_padding(self) -> list[int]:
        """Padding for ``F.pad`` (last dimension first, left/right pairs) when padding_mode is not zeros."""
        if self.padding == "valid":
            return [0, 0, 0, 0]
        if self.padding == "same":
            pads: list[int] = []
            for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return pads
        pad_h, pad_w = self.padding
        return [pad_w, pad_w, pad_h, pad_h]

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "zeros":
            output = F.conv2d(
                input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
        else:
            padded = F.pad(input, self._explicit_padding(), mode=self.padding_mode)
            output = F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        self._remember(input, output)
        return output

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class Linear(RecordingMixin, nn.Module):
    """Affine map ``y = x W^T + b`` on ``F.linear``, with the signature and behaviour of ``nn.Linear``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self._init_recording()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the parameters exactly as ``nn.Linear.reset_parameters`` does."""
        _kaiming_reset(self.weight, self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        output = F.linear(input, self.weight, self.bias)
        self._remember(input, output)
        return output

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
