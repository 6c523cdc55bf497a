"""Closed-form references and figures of the LMS lab.

- Wiener (least-squares) solution from the normal equations ``R w = p`` with ``R = X^T X / N`` and
  ``p = X^T d / N``, i.e. ``W* = (X^T X)^-1 X^T d``, and the whole-dataset MSE at ``W*``: the floor LMS approaches.
- Step-size bounds of LMS: ``2 / lambda_max(R)`` (convergence of the mean weights for small steps, the lab's
  bound) and the stricter ``2 / trace(R) = 2 / E|x|^2`` (the usual practical bound for one update per sample,
  since a single update is unstable when ``r |x|^2 > 2``). Per-sample LMS can blow up between the two.
- MSE conventions: ``mean`` = mean of squared errors, ``half_mean`` = half of it (the LMS cost whose gradient gives
  ``w <- w + r e x``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from dllabs.errors import ConfigError

ELEVATION, AZIMUTH = 15.0, 65.0
MSE_SCALES = {"mean": 1.0, "half_mean": 0.5}
MSE_DEFINITIONS = {
    "mean": "MSE = mean over samples of (d - y)^2",
    "half_mean": "MSE = 1/2 * mean over samples of (d - y)^2",
}


def check_convention(convention: str) -> str:
    if convention not in MSE_SCALES:
        raise ConfigError(f"unknown MSE convention {convention!r}; choose one of {sorted(MSE_SCALES)}")
    return convention


def mse(
    features: np.ndarray, targets: np.ndarray, weights: Sequence[float], convention: str = "mean"
) -> float:
    """Whole-dataset MSE of the linear filter ``weights`` under ``convention``."""
    errors = np.asarray(targets, dtype=np.float64) - np.asarray(features, dtype=np.float64) @ np.asarray(
        weights
    )
    return MSE_SCALES[check_convention(convention)] * float(np.mean(errors**2))


def autocorrelation(features: np.ndarray) -> np.ndarray:
    """Input autocorrelation matrix ``R = X^T X / N``."""
    features = np.asarray(features, dtype=np.float64)
    return features.T @ features / features.shape[0]


@dataclass(frozen=True)
class WienerSolution:
    weights: np.ndarray
    mse: float


def wiener_solution(features: np.ndarray, targets: np.ndarray, convention: str = "mean") -> WienerSolution:
    """Solve ``R w = p``; raise :class:`ConfigError` when the inputs are linearly dependent."""
    features = np.asarray(features, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    cross = features.T @ targets / features.shape[0]
    try:
        weights = np.linalg.solve(autocorrelation(features), cross)
    except np.linalg.LinAlgError as error:
        raise ConfigError(
            "the input autocorrelation X^T X is singular (inputs are linearly dependent, e.g. a duplicated column "
            "or a second bias column): remove the dependent column, or use data.add_bias=false if the file "
            "already holds the bias"
        ) from error
    return WienerSolution(weights=weights, mse=mse(features, targets, weights, convention))


@dataclass(frozen=True)
class StabilityBounds:
    lambda_max: float
    mean_bound: float
    mean_square_bound: float


def stability_bounds(features: np.ndarray) -> StabilityBounds:
    """``2 / lambda_max(R)`` and ``2 / trace(R)`` for the inputs ``features``."""
    correlation = autocorrelation(features)
    lambda_max = float(np.linalg.eigvalsh(correlation)[-1])
    return StabilityBounds(
        lambda_max=lambda_max,
        mean_bound=2.0 / lambda_max,
        mean_square_bound=2.0 / float(np.trace(correlation)),
    )


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
