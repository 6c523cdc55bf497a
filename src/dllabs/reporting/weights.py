"""Compare the weight distributions of finished runs (lab 4: L1 vs L2 regularisation) in one figure.

Only the weights a penalty acts on are compared: tensors of the net with two or more dimensions (conv kernels,
linear matrices), read from each run's best checkpoint. L1 drives many weights to (near) zero and leaves a
sharp peak there with heavier tails; L2 shrinks all weights smoothly, so the histogram of ``|w|`` on a log
axis shows the difference best.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from dllabs.errors import ConfigError
from dllabs.runs import RunFolder, read_checkpoint

SMALL = 1e-3


@dataclass
class RunWeights:
    """The penalised weights of one run, flattened, with a label saying how the run was regularised."""

    run_dir: Path
    label: str
    values: torch.Tensor
    layers: dict[str, int]


def penalized_weights(state_dict: dict[str, torch.Tensor], prefix: str = "net.") -> dict[str, torch.Tensor]:
    """The net's non-bias weights (two or more dimensions) of a task state dict, by name."""
    return {
        key.removeprefix(prefix): value.detach().float()
        for key, value in state_dict.items()
        if key.startswith(prefix) and torch.is_tensor(value) and value.ndim >= 2
    }


def describe_run(run_dir: Path) -> str:
    """e.g. ``L1 1e-04 (val/acc 0.717)`` from the run's config and metrics.json."""
    run = RunFolder(run_dir)
    cfg = run.config
    regularizer = cfg.get("regularizer") or {}
    target = str(regularizer.get("_target_", "")).rsplit(".", 1)[-1]
    label = f"{target} {float(regularizer.get('strength', 0.0)):.0e}" if target else "no penalty"
    weight_decay = float((cfg.get("optimizer") or {}).get("weight_decay", 0.0) or 0.0)
    if weight_decay:
        label += f" + weight_decay {weight_decay:.0e}"
    score, name = run.best_score, run.optimized_metric
    if score is not None and name:
        label += f" ({name} {score:.3f})"
    return label


def load_run_weights(run_dir: str | Path, checkpoint: str = "best", label: str | None = None) -> RunWeights:
    """The penalised weights of a finished run's ``best`` (or ``last``) checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(
            f"{run_dir} is not a dllabs run folder (it does not exist); pass folders made by train.py"
        )
    label = label or describe_run(run_dir)
    if checkpoint == "best":
        path = RunFolder(run_dir).best_checkpoint()
    elif checkpoint == "last":
        path = run_dir / "checkpoints" / "last.ckpt"
    else:
        raise ConfigError(f"checkpoint={checkpoint!r}: use 'best' or 'last'")
    state = read_checkpoint(path).get("state_dict", {})
    weights = penalized_weights(state)
    if not weights:
        raise ConfigError(
            f"{path} holds no net weights (no 'net.*' tensors); is it a dllabs task checkpoint?"
        )
    values = torch.cat([w.flatten() for w in weights.values()])
    return RunWeights(
        run_dir, label or describe_run(run_dir), values, {k: v.numel() for k, v in weights.items()}
    )


def weight_stats(values: torch.Tensor) -> dict[str, float]:
    """Summary numbers of one weight distribution."""
    magnitude = values.abs()
    return {
        "count": int(values.numel()),
        "mean_abs": float(magnitude.mean()),
        "std": float(values.std()),
        "max_abs": float(magnitude.max()),
        "l1_norm": float(magnitude.sum()),
        "l2_norm": float(values.norm()),
        f"fraction_abs_below_{SMALL:g}": float((magnitude < SMALL).float().mean()),
    }


def plot_weight_distributions(runs: list[RunWeights], path: Path) -> Path:
    """Two panels: histogram of ``w`` (log counts) and of ``|w|`` on a log axis, one colour per run."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    limit = max(float(r.values.abs().max()) for r in runs)
    linear_bins = np.linspace(-limit, limit, 161)
    smallest = max(1e-8, min(float(r.values.abs()[r.values.abs() > 0].min()) for r in runs))
    log_bins = np.logspace(math.log10(smallest), math.log10(limit), 121)
    for run in runs:
        values = run.values.numpy()
        zeros = int((values == 0).sum())
        label = f"{run.label}, {zeros} exact zeros" if zeros else run.label
        left.hist(values, bins=linear_bins, histtype="step", linewidth=1.4, label=run.label)
        right.hist(np.abs(values[values != 0]), bins=log_bins, histtype="step", linewidth=1.4, label=label)
    left.set_yscale("log")
    left.set_xlabel("weight w")
    left.set_ylabel("count (log)")
    left.set_title("weights of conv and linear layers")
    right.set_xscale("log")
    right.set_xlabel("|w| (log)")
    right.set_ylabel("count")
    right.set_title("magnitudes")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def stats_table(runs: list[RunWeights], stats: list[dict[str, float]]) -> pd.DataFrame:
    """One row per run: how many penalised weights, their mean/std/max magnitude, the fraction near zero."""
    small = f"fraction_abs_below_{SMALL:g}"
    return pd.DataFrame(
        {
            "run": r.label, "weights": s["count"], "mean|w|": s["mean_abs"], "std": s["std"],
            "max|w|": s["max_abs"], f"|w|<{SMALL:g}": s[small],
        }
        for r, s in zip(runs, stats)
    )


def compare_weights(
    run_dirs: list[str | Path],
    out: str | Path | None = None,
    labels: list[str] | None = None,
    checkpoint: str = "best",
) -> tuple[str, Path, dict]:
    """Figure + stats of two or more runs' weight distributions; returns (stats table, figure path, stats)."""
    if len(run_dirs) < 2:
        raise ConfigError(
            "compare at least two run folders (e.g. the L1 and the L2 run of sweep=robust_l1_vs_l2)"
        )
    if labels is not None and len(labels) != len(run_dirs):
        raise ConfigError(f"got {len(labels)} labels for {len(run_dirs)} runs")
    runs = [
        load_run_weights(run, checkpoint, labels[i] if labels else None) for i, run in enumerate(run_dirs)
    ]
    shapes = [r.layers for r in runs]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ConfigError("the runs have different architectures; compare runs of the same model")
    out = Path(out) if out else Path(run_dirs[0]).resolve().parent / "weight_distributions.png"
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        out = out / "weight_distributions.png"
    figure = plot_weight_distributions(runs, out)
    stats = [weight_stats(r.values) for r in runs]
    payload = {str(r.run_dir): {"label": r.label, **s} for r, s in zip(runs, stats)}
    figure.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    return stats_table(runs, stats), figure, payload
