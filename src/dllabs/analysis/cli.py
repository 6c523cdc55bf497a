"""``scripts/analyze.py``: the layer table and the weight/gradient histograms of any model config.

The example input comes from ``input_shape`` (and ``input_dtype``); by default it is read off the net's
first layer (:func:`dllabs.analysis.example_inputs.example_inputs`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from dllabs.analysis.example_inputs import example_inputs
from dllabs.analysis.layer_table import LayerTable, layer_table
from dllabs.entry import hydra_main
from dllabs.errors import ConfigError, DllabsError

log = logging.getLogger("dllabs")


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
