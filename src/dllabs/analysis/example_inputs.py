"""Seeded example inputs for a net, read off its first layer: what the layer table (``scripts/analyze.py``) and
a task's model summary (``example_input_array``) run the net on.

By default: ``[1, C, 32, 32]`` for a 2-D conv, ``[1, in]`` for a linear layer, ``[1, 256]`` token ids for an
embedding, ``[256, 1, in]`` (or batch-first) for a recurrent layer. A forward argument named ``lengths`` (padded
token batches) gets the full sequence length.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from dllabs.analysis.layer_table import analysed_layers
from dllabs.errors import ConfigError

DEFAULT_SEQUENCE_LENGTH = 256
DEFAULT_IMAGE_SIDE = 32
DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "long": torch.long,
    "int64": torch.long,
}


def default_input_shape(net: nn.Module) -> tuple[list[int], torch.dtype]:
    """A batch-of-one input shape and dtype that fit the net's first analysed layer."""
    layers = analysed_layers(net)
    if not layers:
        raise ConfigError(
            f"{type(net).__name__} has no conv/linear/recurrent/embedding layer to read an input shape from; "
            "pass input_shape=[...] (and input_dtype=long for token ids)"
        )
    first, _ = next(iter(layers.values()))
    if isinstance(first, (nn.Embedding, nn.EmbeddingBag)):
        return [1, DEFAULT_SEQUENCE_LENGTH], torch.long
    if isinstance(first, nn.RNNBase):
        steps_first = [DEFAULT_SEQUENCE_LENGTH, 1] if not first.batch_first else [1, DEFAULT_SEQUENCE_LENGTH]
        return [*steps_first, first.input_size], torch.float32
    weight = first.weight
    if weight.ndim >= 3:  # conv: (out, in/groups, *kernel)
        channels = weight.shape[1] * getattr(first, "groups", 1)
        spatial = [DEFAULT_IMAGE_SIDE] * (weight.ndim - 2)
        return [1, channels, *spatial], torch.float32
    return [1, weight.shape[-1]], torch.float32


def example_inputs(
    net: nn.Module,
    input_shape: Sequence[int] | None = None,
    input_dtype: str | None = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Seeded arguments for ``net.forward``: the input tensor, plus ``lengths`` when the net takes them."""
    shape, dtype = default_input_shape(net) if input_shape is None else (list(input_shape), None)
    if input_dtype is not None:
        if input_dtype not in DTYPES:
            raise ConfigError(f"input_dtype={input_dtype!r} is not one of {sorted(DTYPES)}")
        dtype = DTYPES[input_dtype]
    if dtype is None:
        dtype = default_input_shape(net)[1] if analysed_layers(net) else torch.float32
    if not shape or any(int(s) < 1 for s in shape):
        raise ConfigError(
            f"input_shape={list(shape)} must be a non-empty list of positive sizes, e.g. [1,3,32,32]"
        )
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.long:
        vocab = _vocabulary_size(net)
        x = torch.randint(min(2, vocab - 1), vocab, shape, generator=generator)
    else:
        x = torch.randn(shape, generator=generator, dtype=dtype)
    return [x, *_extra_arguments(net, shape)]


def _vocabulary_size(net: nn.Module) -> int:
    for module in net.modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            return module.num_embeddings
    raise ConfigError("input_dtype=long needs an embedding layer in the net; use input_dtype=float32")


def _extra_arguments(net: nn.Module, shape: Sequence[int]) -> list[torch.Tensor]:
    """Values for the forward parameters after the first one that have no default."""
    parameters = list(inspect.signature(net.forward).parameters.values())[1:]
    extra = []
    for param in parameters:
        if param.default is not inspect.Parameter.empty or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        if "length" not in param.name:
            raise ConfigError(
                f"{type(net).__name__}.forward needs {param.name!r}, which analyze.py cannot make up; "
                "it supplies only the input tensor and sequence lengths"
            )
        batch, steps = shape[0], shape[1] if len(shape) > 1 else 1
        extra.append(torch.full((batch,), steps, dtype=torch.long))
    return extra
