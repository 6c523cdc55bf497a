"""Summarise a multirun folder (or any folder of runs): one table, one figure of curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from dllabs.reporting.hparams import folder_row
from dllabs.reporting.table import show_table
from dllabs.runs import RunFolder, Sweep


def summary_table(sweep: Sweep) -> pd.DataFrame:
    """One row per run: its folder, the overrides that set it apart, the hyper-parameters that differ between
    runs, status, and the metrics TensorBoard's HParams tab shows for it (both come from
    :func:`dllabs.reporting.hparams.run_row`)."""
    rows = [folder_row(run) for run in sweep]
    hparams = pd.DataFrame([row.hparams for row in rows])
    varying = [c for c in hparams.columns if c != "status" and hparams[c].astype(str).nunique(dropna=False) > 1]
    frame = pd.DataFrame({"run": [run.name for run in sweep], "setting": sweep.settings()})
    frame = pd.concat([frame, hparams[[*varying, "status"]], pd.DataFrame([row.metrics for row in rows])], axis=1)
    return frame


def plot_curves(runs: list[RunFolder], settings: list[str], path: Path, metrics: tuple[str, ...] = ()) -> Path:
    """Validation curves (and training loss) of every run on shared axes."""
    names = list(metrics) or list(
        dict.fromkeys([r.optimized_metric for r in runs if r.optimized_metric] + ["val/loss", "train/loss"])
    )
    names = [n for n in names if any(n in row for r in runs for row in r.history)] or names[:1]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        for run, label in zip(runs, settings):
            points = [(row["epoch"], row[name]) for row in run.history if name in row]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=2.5, label=f"{label} [{run.status}]")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if name.endswith(("loss", "mse", "ppl")):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(folder: str | Path, out_dir: str | Path | None = None) -> tuple[str, list[dict]]:
    """Print the table of ``folder``'s runs and write ``report.md``, ``report.csv`` and ``report_curves.png``
    (into ``out_dir``, default the folder); return the Markdown table and the rows."""
    sweep = Sweep(folder)
    frame = summary_table(sweep)
    out = Path(out_dir or folder)
    out.mkdir(parents=True, exist_ok=True)
    table = show_table(frame, title=str(folder), out=out / "report")
    plot_curves(sweep.runs, sweep.settings(), out / "report_curves.png")
    return table, frame.to_dict("records")
