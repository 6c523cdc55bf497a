"""``scripts/analyze.py``: the layer table and the weight/gradient histograms of any model config.

The example input comes from ``input_shape`` (and ``input_dtype``); by default it is read off the net's
first layer: ``[1, C, 32, 32]`` for a 2-D conv, ``[1, in]`` for a linear layer, ``[1, 256]`` token ids for an
embedding. A forward argument named ``lengths`` (padded token batches) gets the full sequence length.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from dllabs.analysis.layer_table import LayerTable, analysed_layers, layer_table
from dllabs.entry import hydra_main
from dllabs.errors import ConfigError, DllabsError

log = logging.getLogger("dllabs")

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


def build_net(cfg: DictConfig) -> nn.Module:
    """The model config's net alone (no task, optimiser or data)."""
    if not cfg.model.get("net"):
        raise ConfigError(f"model config {cfg.model.get('_target_')} has no net to analyse")
    try:
        return instantiate(cfg.model.net)
    except (InstantiationException, OmegaConfBaseException) as err:
        if isinstance(err.__cause__, DllabsError):
            raise err.__cause__ from None
        raise ConfigError(
            f"cannot build the model config ({err}); analyze.py has no data config, so set values the model "
            "would take from it on the command line, e.g. model.net.vocab_size=20000"
        ) from err


def analyze(cfg: DictConfig) -> LayerTable:
    """Print the layer table; write it (CSV, Markdown, JSON) and the histogram figures into the run folder."""
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = build_net(cfg)
    shape = OmegaConf.to_container(cfg.input_shape) if cfg.get("input_shape") is not None else None
    inputs = example_inputs(net, shape, cfg.get("input_dtype"), seed=cfg.seed)
    try:
        table = layer_table(net, *inputs)
    except RuntimeError as err:
        raise ConfigError(
            f"{type(net).__name__} cannot run on an input of shape {list(inputs[0].shape)} ({err}); "
            "set input_shape=[...] to the shape the model is built for"
        ) from err
    print(f"{type(net).__name__} on input {'x'.join(map(str, inputs[0].shape))} ({inputs[0].dtype})")
    print(table.to_text())
    table.to_csv(out_dir / "layer_table.csv")
    (out_dir / "layer_table.md").write_text(table.to_markdown())
    summary: dict[str, Any] = {
        "net": type(net).__name__,
        "input_shape": list(inputs[0].shape),
        "input_dtype": str(inputs[0].dtype).removeprefix("torch."),
        "totals": {
            "params": table.total_params,
            "bias": table.total_bias,
            "params_with_bias": table.total_params_with_bias,
            "model_params": table.model_params,
            "macs": table.total_macs,
            "bias_adds": table.total_bias_adds,
        },
        "layers": table.records(),
    }
    if cfg.get("histograms", True):
        summary["histograms"] = _histograms(cfg, net, inputs, out_dir)
    (out_dir / "layer_analysis.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwritten to {out_dir}")
    return table


def _histograms(cfg: DictConfig, net: nn.Module, inputs: list[torch.Tensor], out_dir: Path) -> dict[str, Any]:
    from dllabs.analysis.histograms import histogram_study

    writer = None
    if cfg.get("tensorboard", True):
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tensorboard"))
    try:
        study = histogram_study(
            net, inputs, out_dir, writer=writer, seed=cfg.seed, zero_biases=cfg.get("zero_biases", False)
        )
    finally:
        if writer is not None:
            writer.close()
    print()
    print(study["observation"])
    return {
        "figures": {case: path.name for case, path in study["figures"].items()},
        "zero_gradients_with_zero_weights": study["zero_weights"].zero_gradient_names(),
        "observation": study["observation"],
    }


def analyze_main() -> None:
    hydra_main(analyze, "analyze")
