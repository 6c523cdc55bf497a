"""Summarise a multirun folder (or any folder of runs): one table, one figure of curves."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from omegaconf import OmegaConf

from dllabs.errors import ConfigError


@dataclass
class RunSummary:
    """What one run folder says about itself."""

    path: Path
    overrides: list[str]
    status: str
    metric_name: str | None = None
    best_score: float | None = None
    best_epoch: int | None = None
    wall_time_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None


def _overrides(run: Path) -> list[str]:
    file = run / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(file)] if file.exists() else []


def read_run(run: Path) -> RunSummary:
    """The summary of one run folder; a folder without metrics.json is a job that crashed before writing it."""
    metrics_file = run / "metrics.json"
    if not metrics_file.exists():
        return RunSummary(run, _overrides(run), "failed", error="no metrics.json (crashed before training)")
    record = json.loads(metrics_file.read_text())
    return RunSummary(
        path=run,
        overrides=_overrides(run),
        status=record.get("status", "unknown"),
        metric_name=record.get("optimized_metric"),
        best_score=record.get("best_score"),
        best_epoch=record.get("best_epoch"),
        wall_time_s=record.get("wall_time_s"),
        metrics=record.get("metrics", {}),
        history=record.get("history", []),
        error=record.get("error"),
    )


def find_runs(folder: str | Path) -> list[RunSummary]:
    """Every run under ``folder`` (the folder itself, or its job sub-folders), in job order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; pass a multirun folder such as outputs/<task>/multiruns/<time>")
    candidates = [folder] if (folder / ".hydra").is_dir() else []
    candidates += [p.parent.parent for p in folder.glob("*/.hydra/config.yaml")]
    candidates += [p.parent.parent for p in folder.glob("*/*/.hydra/config.yaml") if p.parent.parent not in candidates]

    def order(path: Path) -> tuple:
        return (0, int(path.name), "") if path.name.isdigit() else (1, 0, str(path))

    runs = [read_run(p) for p in sorted(set(candidates), key=order)]
    if not runs:
        raise ConfigError(f"no run folders (with .hydra/config.yaml) under {folder}")
    return runs


def _varying_overrides(runs: list[RunSummary]) -> list[str]:
    """Override strings that differ between runs: the sweep's own settings."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    return [" ".join(o for o in r.overrides if o not in common) or "(base)" for r in runs]


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def summary_rows(runs: list[RunSummary]) -> list[dict[str, str]]:
    """One row per run: settings, status, best and final metrics, time."""
    rows = []
    for run, setting in zip(runs, _varying_overrides(runs)):
        row = {
            "run": run.path.name,
            "setting": setting,
            "status": run.status,
            "best_epoch": _fmt(run.best_epoch),
            f"best {run.metric_name or 'metric'}": _fmt(run.best_score),
        }
        for key in ("val/acc", "val/loss", "test/acc", "test/loss", "val/mse", "val/ppl", "test/ppl"):
            if key in run.metrics:
                row[f"final {key}"] = _fmt(run.metrics[key])
        row["time_s"] = _fmt(run.wall_time_s, 3)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, str]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def plot_curves(runs: list[RunSummary], path: Path, metrics: tuple[str, ...] = ()) -> Path:
    """Validation curves (and training loss) of every run on shared axes."""
    names = list(metrics) or list(
        dict.fromkeys(
            [r.metric_name for r in runs if r.metric_name]
            + ["val/loss", "train/loss"]
        )
    )
    names = [n for n in names if any(n in row for r in runs for row in r.history)] or names[:1]
    settings = _varying_overrides(runs)
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


def report(folder: str | Path, out_dir: str | Path | None = None) -> tuple[str, list[dict[str, str]]]:
    """Write ``report.md``, ``report.csv`` and ``report_curves.png`` for ``folder``; return the table and rows."""
    runs = find_runs(folder)
    rows = summary_rows(runs)
    out = Path(out_dir or folder)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    (out / "report.md").write_text(table + "\n")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out / "report.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    plot_curves(runs, out / "report_curves.png")
    return table, rows
