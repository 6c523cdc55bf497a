"""Per-epoch learning curves of one run, drawn from its metric history."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_history(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """One panel per metric name (loss, acc, ...), train and val curves together; saved to ``path``."""
    names = sorted({key.split("/", 1)[1] for row in history for key in row if "/" in key})
    names = [n for n in names if not n.startswith(("lr", "penalty"))] or names
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for stage in ("train", "val"):
            points = [(row["epoch"], row[f"{stage}/{name}"]) for row in history if f"{stage}/{name}" in row]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
