"""Closed-form references of the LMS lab (its figures: ``dllabs.analysis.lms_figures``).

- Wiener (least-squares) solution from the normal equations ``R w = p`` with ``R = X^T X / N`` and
  ``p = X^T d / N``, i.e. ``W* = (X^T X)^-1 X^T d``, and the whole-dataset MSE at ``W*``: the floor LMS approaches.
- Step-size bounds of LMS: ``2 / lambda_max(R)`` (convergence of the mean weights for small steps, the lab's
  bound) and the stricter ``2 / trace(R) = 2 / E|x|^2`` (the usual practical bound for one update per sample,
  since a single update is unstable when ``r |x|^2 > 2``). Per-sample LMS can blow up between the two.
- MSE conventions: ``mean`` = mean of squared errors, ``half_mean`` = half of it (the LMS cost whose gradient gives
  ``w <- w + r e x``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dllabs.errors import ConfigError

MSEConvention = Literal["mean", "half_mean"]  # model.mse of RegressionTask
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
