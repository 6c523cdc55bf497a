"""Histograms of each layer's weights and of its gradients after one backward pass.

The pass uses the MSE between the model's output and a random target of the same shape (seeded). The
same pass with every layer weight set to zero shows the symmetry problem: the error signal that reaches a
layer is multiplied by the (zero) weights above it, so every gradient below the last layer is exactly
zero, and all units of a layer stay identical forever.

Only the layers the layer table covers (conv, linear, recurrent, embedding) are studied; "weights" are
their non-bias parameters, and biases keep their values unless ``zero_biases=True``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from dllabs.analysis.layer_table import analysed_layers, first_tensor

INITIAL = "initial"
ZERO_WEIGHTS = "zero_weights"


@dataclass
class GradientSnapshot:
    """Parameters and their gradients after one backward pass; keys are qualified parameter names."""

    case: str
    loss: float
    weights: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor]

    def zero_gradient_names(self) -> list[str]:
        """Parameters whose gradient is exactly zero everywhere."""
        return [name for name, grad in self.gradients.items() if not torch.any(grad != 0)]

    def nonzero_gradient_names(self) -> list[str]:
        return [name for name, grad in self.gradients.items() if torch.any(grad != 0)]

    def zero_fraction(self, name: str) -> float:
        """Share of exactly-zero entries in one gradient."""
        grad = self.gradients[name]
        return float((grad == 0).sum()) / max(1, grad.numel())


def studied_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Trainable parameters of the table's layers, by qualified name, in registration order."""
    found: dict[str, nn.Parameter] = {}
    for layer_name, (module, _) in analysed_layers(model).items():
        prefix = f"{layer_name}." if module is not model else ""
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                found[prefix + name] = param
    return found


def is_bias(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("bias")


def one_backward_pass(
    model: nn.Module, inputs: Sequence[Any], case: str = INITIAL, seed: int = 0
) -> GradientSnapshot:
    """Forward ``inputs`` (train mode), MSE against a seeded random target, backward; copy weights, grads."""
    params = studied_parameters(model)
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.train()
    try:
        output = first_tensor(model(*inputs))
    finally:
        model.train(was_training)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{type(model).__name__} returned no tensor; cannot build an MSE target")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    target = torch.randn(output.shape, generator=generator, dtype=output.dtype).to(output.device)
    loss = F.mse_loss(output, target)
    loss.backward()
    gradients = {
        name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)).cpu()
        for name, p in params.items()
    }
    weights = {name: p.detach().clone().cpu() for name, p in params.items()}
    model.zero_grad(set_to_none=True)
    return GradientSnapshot(case=case, loss=loss.item(), weights=weights, gradients=gradients)


def zero_weights(model: nn.Module, zero_biases: bool = False) -> nn.Module:
    """Set the studied layers' weights (and biases if asked) to zero in place; returns ``model``."""
    with torch.no_grad():
        for name, param in studied_parameters(model).items():
            if zero_biases or not is_bias(name):
                param.zero_()
    return model


def zero_weight_pass(
    model: nn.Module, inputs: Sequence[Any], seed: int = 0, zero_biases: bool = False
) -> GradientSnapshot:
    """``one_backward_pass`` on a copy of ``model`` whose layer weights are all zero."""
    zeroed = zero_weights(copy.deepcopy(model), zero_biases=zero_biases)
    return one_backward_pass(zeroed, inputs, case=ZERO_WEIGHTS, seed=seed)


_EXPLANATION = (
    "Why: a weight's gradient is the error signal at its layer's output times the layer's input. The signal "
    "sent down to a layer is multiplied by the (zero) weights above it, so no layer below the last gets any; "
    "and all units of a layer see the same input and the same signal, so their updates are identical and "
    "they can never become different (the symmetry is never broken). This is why weights start random."
)

_NO_SYMMETRY = (
    "No gradient vanishes here: each weight's gradient depends only on its input and the error, not on other "
    "(zero) weights, so zero is a harmless start for this model."
)


def observation(initial: GradientSnapshot, zeroed: GradientSnapshot) -> str:
    """What the zero-weight pass shows, from the measured gradients."""
    zero = zeroed.zero_gradient_names()
    nonzero = zeroed.nonzero_gradient_names()
    lines = [
        f"With all layer weights set to zero, {len(zero)} of {len(zeroed.gradients)} gradients are "
        "exactly zero: " + (", ".join(zero) or "none") + ".",
        "Non-zero gradients: " + (", ".join(nonzero) or "none") + ".",
        _EXPLANATION if zero else _NO_SYMMETRY,
        "Share of exactly-zero gradient entries (initial -> zero weights):",
    ]
    for name in zeroed.gradients:
        lines.append(f"  {name}: {initial.zero_fraction(name):.1%} -> {zeroed.zero_fraction(name):.1%}")
    return "\n".join(lines)


def plot_snapshot(snapshot: GradientSnapshot, bins: int = 50) -> Figure:
    """One row per parameter: its values on the left, its gradient on the right (no pyplot state involved)."""
    names = list(snapshot.weights)
    fig = Figure(figsize=(10, 1.9 * len(names) + 0.8), layout="tight")
    axes = fig.subplots(len(names), 2, squeeze=False)
    for row, name in enumerate(names):
        for col, (kind, values) in enumerate(
            (("value", snapshot.weights[name]), ("gradient", snapshot.gradients[name]))
        ):
            ax = axes[row, col]
            data = values.flatten().float().numpy()
            ax.hist(data, bins=bins, color="tab:blue" if col == 0 else "tab:orange")
            all_zero = not data.any()
            ax.set_title(f"{name} {kind}" + (" (all exactly 0)" if all_zero else ""), fontsize=9)
            ax.tick_params(labelsize=7)
    fig.suptitle(
        f"{snapshot.case.replace('_', ' ')}: weights and gradients after one backward pass "
        f"(MSE {snapshot.loss:.4g})"
    )
    return fig


def log_snapshot(
    writer: Any, snapshot: GradientSnapshot, figure: Figure | None = None, step: int = 0
) -> None:
    """Histograms (and the figure) into a TensorBoard ``SummaryWriter`` under ``<case>/...`` tags."""
    for name in snapshot.weights:
        writer.add_histogram(f"{snapshot.case}/weights/{name}", snapshot.weights[name], step)
        writer.add_histogram(f"{snapshot.case}/gradients/{name}", snapshot.gradients[name], step)
    if figure is not None:
        writer.add_figure(f"{snapshot.case}/histograms", figure, step, close=False)


def histogram_study(
    model: nn.Module,
    inputs: Sequence[Any],
    out_dir: str | Path,
    writer: Any = None,
    seed: int = 0,
    zero_biases: bool = False,
) -> dict[str, Any]:
    """Both passes: figures ``histograms_initial.png`` and ``histograms_zero_weights.png`` in ``out_dir``,
    TensorBoard logging when ``writer`` is given; returns the snapshots, figure paths and the observation."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    initial = one_backward_pass(model, inputs, case=INITIAL, seed=seed)
    zeroed = zero_weight_pass(model, inputs, seed=seed, zero_biases=zero_biases)
    figures = {}
    for snapshot in (initial, zeroed):
        fig = plot_snapshot(snapshot)
        path = out_dir / f"histograms_{snapshot.case}.png"
        fig.savefig(path, dpi=110)
        if writer is not None:
            log_snapshot(writer, snapshot, fig)
        figures[snapshot.case] = path
    text = observation(initial, zeroed)
    if writer is not None:
        writer.add_text("zero_weights/observation", text.replace("\n", "  \n"), 0)
    return {"initial": initial, "zero_weights": zeroed, "figures": figures, "observation": text}
