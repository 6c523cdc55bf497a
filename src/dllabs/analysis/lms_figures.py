"""Figures of the LMS lab: the MSE learning curve against the Wiener floor, and the fitted planes in 3-D."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

ELEVATION, AZIMUTH = 15.0, 65.0


def _finite_prefix(history: Sequence[float]) -> tuple[list[float], int | None]:
    """The values before the first non-finite one, and the index of that one (None if all finite)."""
    for index, value in enumerate(history):
        if not math.isfinite(value):
            return list(history[:index]), index
    return list(history), None


def plot_mse_curve(
    mse_history: Sequence[float],
    wiener_mse: float,
    *,
    lr: float,
    convention: str,
    initial_mse: float | None = None,
) -> Figure:
    """Whole-dataset MSE per epoch on a log axis with the Wiener floor; a divergence is marked, not hidden."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    start = 0 if initial_mse is not None else 1
    values = ([initial_mse] if initial_mse is not None else []) + [float(v) for v in mse_history]
    finite, broke_at = _finite_prefix(values)
    finite = [max(v, np.finfo(float).tiny) for v in finite]
    axes.semilogy(
        range(start, start + len(finite)), finite, marker="o", markersize=3, label=f"LMS, r = {lr:g}"
    )
    axes.axhline(wiener_mse, color="black", linestyle="--", label=f"Wiener floor {wiener_mse:.4g}")
    if broke_at is not None:
        axes.axvline(
            start + broke_at, color="red", linestyle=":", label=f"diverged (MSE = {values[broke_at]})"
        )
    axes.set_xlabel("epochs trained (0 = start weights)")
    axes.set_ylabel(f"MSE ({convention})")
    axes.set_title("LMS learning curve")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return figure


def plot_planes(
    features: np.ndarray, targets: np.ndarray, wiener_weights: np.ndarray, lms_weights: np.ndarray
) -> Figure:
    """3-D scatter of ``(x1, x2, d)`` with the Wiener plane and the LMS plane (inputs ``[1, x1, x2]``)."""
    features = np.asarray(features, dtype=np.float64)
    if features.shape[1] != 3:
        raise ValueError(f"the plane figure needs inputs [1, x1, x2], got {features.shape[1]} columns")
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    axes = figure.add_subplot(projection="3d")
    axes.scatter(features[:, 1], features[:, 2], targets, color="black", s=10, label="data")
    grid_1, grid_2 = np.meshgrid(
        np.linspace(features[:, 1].min(), features[:, 1].max(), 12),
        np.linspace(features[:, 2].min(), features[:, 2].max(), 12),
    )
    low, high = float(np.min(targets)), float(np.max(targets))
    margin = high - low
    planes = [("Wiener", wiener_weights, "tab:blue"), ("LMS", lms_weights, "tab:orange")]
    for name, weights, color in planes:
        w0, w1, w2 = (float(v) for v in weights)
        heights = w0 + w1 * grid_1 + w2 * grid_2
        label = f"{name}: [{w0:.5f}, {w1:.5f}, {w2:.5f}]"
        if (
            not np.all(np.isfinite(heights))
            or heights.min() < low - 5 * margin
            or heights.max() > high + 5 * margin
        ):
            axes.plot([], [], " ", label=f"{label} (off the chart)")
            continue
        axes.plot_surface(grid_1, grid_2, heights, color=color, alpha=0.35)
        axes.plot([], [], color=color, linewidth=6, alpha=0.5, label=label)
    axes.view_init(elev=ELEVATION, azim=AZIMUTH)
    axes.set_xlabel("x1")
    axes.set_ylabel("x2")
    axes.set_zlabel("d")
    axes.set_title("data and fitted planes d = w0 + w1 x1 + w2 x2")
    axes.legend(loc="upper left")
    return figure
