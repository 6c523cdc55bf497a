"""Summary of an LMS step-size sweep: every run's MSE curve on one log-scale figure, and a table of the final
MSE per step size ``r`` next to the stability bounds ``2 / lambda_max(R)`` and ``2 / trace(R)``.

Reads only what the runs wrote: ``metrics.json`` (status, and the task's ``results``) in each run folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dllabs.errors import ConfigError
from dllabs.reporting.table import show_table
from dllabs.runs import RunFolder, Sweep


@dataclass(frozen=True)
class LMSRun:
    """One run of the sweep, as recorded in its ``metrics.json``."""

    run_dir: Path
    status: str
    lr: float
    mse_convention: str
    initial_mse: float | None
    mse_history: list[float]
    wiener_mse: float
    distance_to_wiener: float
    stability_bound: float
    mean_square_bound: float

    @property
    def final_mse(self) -> float:
        return self.mse_history[-1] if self.mse_history else math.nan

    @property
    def diverged_at(self) -> int | None:
        """The epoch (1-based) whose MSE was first non-finite, if any."""
        for epoch, value in enumerate(self.mse_history, start=1):
            if not math.isfinite(value):
                return epoch
        return None


def _number(value: object) -> float:
    """A recorded number; ``"inf"``/``"nan"`` strings (non-finite values) are read back, missing is NaN."""
    return math.nan if value is None else float(value)


def _read_run(run: RunFolder) -> LMSRun | None:
    results = run.results
    if "mse_history" not in results:
        return None
    return LMSRun(
        run_dir=run.path,
        status=run.status,
        lr=float(results["lr"]),
        mse_convention=str(results.get("mse_convention", "mean")),
        initial_mse=None if results.get("initial_mse") is None else float(results["initial_mse"]),
        mse_history=[float(v) for v in results["mse_history"]],
        wiener_mse=float(results["wiener_mse"]),
        distance_to_wiener=_number(results.get("distance_to_wiener")),
        stability_bound=float(results["stability_bound"]),
        mean_square_bound=float(results["mean_square_bound"]),
    )


def load_lms_runs(root: Path) -> list[LMSRun]:
    """Every LMS run under ``root`` (a multirun folder or any folder of run folders), by step size."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"{root} is not a folder; pass a multirun folder such as outputs/lms/multiruns/<time>"
        )
    try:
        folders = list(Sweep(root))
    except ConfigError:
        folders = []
    runs = [run for folder in folders if (run := _read_run(folder)) is not None]
    if not runs:
        raise ConfigError(
            f"no LMS runs under {root} (no metrics.json with LMS results); run "
            "`python train.py -m experiment=lms sweep=lms_rates` and pass its multirun folder"
        )
    return sorted(runs, key=lambda run: (run.lr, str(run.run_dir)))


def sweep_table(runs: list[LMSRun]) -> pd.DataFrame:
    """One row per run: step size, status, epochs, final MSE, distance to W*, and both bounds."""
    rows = []
    for run in runs:
        rows.append(
            {
                "r": run.lr,
                "status": run.status,
                "epochs": len(run.mse_history),
                "final_mse": run.final_mse,
                "wiener_mse": run.wiener_mse,
                "mse_convention": run.mse_convention,
                "distance_to_wiener": run.distance_to_wiener,
                "2/lambda_max": run.stability_bound,
                "r < 2/lambda_max": run.lr < run.stability_bound,
                "2/trace(R)": run.mean_square_bound,
                "r < 2/trace(R)": run.lr < run.mean_square_bound,
                "run_dir": str(run.run_dir),
            }
        )
    return pd.DataFrame(rows)


def plot_sweep(runs: list[LMSRun]) -> Figure:
    """All MSE curves on one log axis, the Wiener floor dashed; a diverged run ends in a red cross."""
    figure = Figure(figsize=(7.0, 4.6), layout="constrained")
    axes = figure.add_subplot()
    curves = [(run, *_finite_curve(run)) for run in runs]
    stable_values = [v for run, _, values in curves if run.diverged_at is None for v in values]
    top = 10 * max(stable_values) if stable_values else None
    for run, epochs, values in curves:
        label = f"r = {run.lr:g}" + (f" (diverged, epoch {run.diverged_at})" if run.diverged_at else "")
        axes.semilogy(epochs, values, marker="o", markersize=3, label=label)
        if run.diverged_at and values:
            height = values[-1] if top is None else min(values[-1], top)
            axes.plot(epochs[-1], height, "x", color="red", markersize=10, markeredgewidth=2, clip_on=False)
    if top is not None:
        axes.set_ylim(top=top)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for floor in sorted({run.wiener_mse for run in runs}):
        axes.axhline(floor, color="black", linestyle="--", linewidth=1, label=f"Wiener floor {floor:.4g}")
    conventions = sorted({run.mse_convention for run in runs})
    axes.set_xlabel("epochs trained (0 = start weights)")
    axes.set_ylabel(f"MSE ({', '.join(conventions)})")
    axes.set_title("LMS: whole-dataset MSE per epoch for each step size r")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _finite_curve(run: LMSRun) -> tuple[list[int], list[float]]:
    """Epochs and MSE values up to the first non-finite one (epoch 0 = start weights when recorded)."""
    values = ([run.initial_mse] if run.initial_mse is not None else []) + run.mse_history
    start = 0 if run.initial_mse is not None else 1
    finite: list[float] = []
    for value in values:
        if not math.isfinite(value):
            break
        finite.append(value)
    return list(range(start, start + len(finite))), finite


@dataclass(frozen=True)
class LMSReport:
    table: pd.DataFrame
    table_file: Path
    figure_file: Path


def write_report(root: Path, out_dir: Path | None = None) -> LMSReport:
    """Write ``lms_sweep.csv`` and ``lms_sweep.png`` into ``out_dir`` (default: ``root``)."""
    runs = load_lms_runs(root)
    out_dir = Path(out_dir) if out_dir is not None else Path(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = sweep_table(runs)
    table_file = out_dir / "lms_sweep.csv"
    table.to_csv(table_file, index=False)
    figure_file = out_dir / "lms_sweep.png"
    plot_sweep(runs).savefig(figure_file, dpi=120)
    return LMSReport(table=table, table_file=table_file, figure_file=figure_file)


def show_sweep_table(table: pd.DataFrame) -> str:
    """Print the table (run folders left out) and, underneath, the bounds stated once; returns those notes."""
    shown = table.drop(columns=["run_dir", "wiener_mse", "mse_convention", "2/lambda_max", "2/trace(R)"])
    show_table(shown, title="LMS step-size sweep")
    bounds = table[["2/lambda_max", "2/trace(R)", "wiener_mse"]].drop_duplicates()
    conventions = ", ".join(sorted(set(table["mse_convention"])))
    notes = [f"MSE convention: {conventions} (mean = mean of (d - y)^2, half_mean = half of it)"]
    notes += [
        f"stability bounds: 2/lambda_max(R) = {row['2/lambda_max']:.4g} (mean convergence), "
        f"2/trace(R) = {row['2/trace(R)']:.4g} (practical bound for per-sample updates); "
        f"Wiener MSE floor = {row['wiener_mse']:.4g}"
        for _, row in bounds.iterrows()
    ]
    surprising = table[(table["status"] == "diverged") & table["r < 2/lambda_max"]]
    if not surprising.empty:
        notes.append(
            f"r = {', '.join(f'{r:g}' for r in surprising['r'])} diverged below 2/lambda_max(R): that bound holds for "
            "the mean weights at small steps; one update per sample also needs r * |x|^2 < 2 for most samples, "
            "which 2/trace(R) (= 2/E|x|^2) guarantees on average"
        )
    text = "\n".join(notes)
    print(text)
    return text
