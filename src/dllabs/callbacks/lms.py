"""What the LMS lab reports about a run: the Wiener reference, the MSE per epoch and the figures.

At the start of training :class:`LMSReport` reads the training set from the data module, solves for the Wiener
(least-squares) weights ``W*`` and the step-size bounds, and writes them to TensorBoard as text. After every
epoch it records the whole-training-set MSE (under the task's ``mse`` convention) and logs the distance of the
weights to ``W*`` (``train/wiener_distance``). When training ends (or diverges) it keeps the weights reached and
draws ``lms_mse.png`` (and, for inputs ``[1, x1, x2]``, ``lms_planes.png``) into the run folder and TensorBoard.
Its :meth:`run_results` is the ``results`` section of ``metrics.json`` that ``scripts/lms_report.py`` reads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.data import default_collate

from dllabs.analysis.lms import (
    MSE_DEFINITIONS,
    StabilityBounds,
    WienerSolution,
    stability_bounds,
    wiener_solution,
)
from dllabs.analysis.lms_figures import plot_mse_curve, plot_planes
from dllabs.callbacks.results import ResultsCallback
from dllabs.errors import ConfigError, TrainingDiverged

FIGURE_NAMES = ("lms_mse", "lms_planes")


def _render(figure: Figure, dpi: int = 120) -> np.ndarray:
    """Draw ``figure`` once into an RGB array, shared by the PNG file and TensorBoard."""
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _json_number(value: float) -> float | str:
    """Finite floats as numbers, NaN/inf as the strings ``"nan"``/``"inf"``/``"-inf"`` (strict JSON, still visible)."""
    return value if math.isfinite(value) else str(value)


def _training_set(trainer: L.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(inputs, targets)`` of the data module's training set, as two tensors."""
    dataset = getattr(trainer.datamodule, "train_set", None)
    if dataset is None:
        raise ConfigError(
            "the LMS report needs a data module with a training set (train_set), e.g. data=lms; "
            "or drop it with callbacks.lms_report=null"
        )
    inputs, targets = default_collate([dataset[index] for index in range(len(dataset))])
    return inputs, targets.reshape(-1)


def _weights(net: torch.nn.Module) -> np.ndarray:
    """The net's weights as one float64 vector (a ``LinearFilter``'s, bias weight first)."""
    weight_vector = getattr(net, "weight_vector", None)
    if weight_vector is None:
        return np.concatenate([p.detach().cpu().double().flatten().numpy() for p in net.parameters()])
    return weight_vector.cpu().double().numpy()


class LMSReport(ResultsCallback):
    """The Wiener reference, the per-epoch MSE history and the LMS figures of a ``RegressionTask`` run.

    ``figures=False`` skips the PNG files and TensorBoard images. The history, the start weights and the start
    MSE are checkpointed, so a resumed run reports the whole run.
    """

    def __init__(self, figures: bool = True) -> None:
        self.figures = figures
        self.mse_history: list[float] = []
        self.initial_mse: float | None = None
        self.initial_weights: list[float] | None = None
        self.convention = "mean"
        self.wiener: WienerSolution | None = None
        self.bounds: StabilityBounds | None = None
        self.base_lr: float | None = None
        self.trained_weights: np.ndarray | None = None
        self._inputs: torch.Tensor | None = None
        self._targets: torch.Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        inputs, targets = _training_set(trainer)
        expected = getattr(pl_module.net, "in_features", inputs.shape[1])
        if inputs.shape[1] != expected:
            raise ConfigError(
                f"the data has {inputs.shape[1]} inputs per sample (bias column included) but "
                f"model.net.in_features={expected}; set model.net.in_features={inputs.shape[1]} and give "
                f"model.net.initial_weights {inputs.shape[1]} values"
            )
        self._inputs, self._targets = inputs, targets
        features, target_values = self._arrays()
        self.convention = pl_module.mse_convention
        self.wiener = wiener_solution(features, target_values, self.convention)
        self.bounds = stability_bounds(features)
        self.base_lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        if self.initial_weights is None:
            self.initial_weights = _weights(pl_module.net).tolist()
            with torch.no_grad():
                predictions = pl_module(inputs.to(pl_module.device, torch.float32)).double().cpu()
            self.initial_mse = float(pl_module.mse(predictions, targets.double()))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("reference/wiener", self._reference_text(), trainer.global_step)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        assert self._inputs is not None and self._targets is not None
        return self._inputs.double().numpy(), self._targets.double().numpy()

    def _reference_text(self) -> str:
        assert self.wiener is not None and self.bounds is not None
        weights = ", ".join(f"{w:.6f}" for w in self.wiener.weights)
        return (
            f"Wiener W* = [{weights}], MSE at W* = {self.wiener.mse:.6g} "
            f"({MSE_DEFINITIONS[self.convention]}); "
            f"2/lambda_max(R) = {self.bounds.mean_bound:.4g}, 2/trace(R) = {self.bounds.mean_square_bound:.4g}"
        )

    def _distance_to_wiener(self, weights: np.ndarray) -> float | None:
        """Euclidean distance to W*, or None when the net's parameters are not one weight per input."""
        if self.wiener is None or weights.shape != self.wiener.weights.shape:
            return None
        return float(np.linalg.norm(weights - self.wiener.weights))

    def _record_epoch(
        self, trainer: L.Trainer, pl_module: L.LightningModule, value: torch.Tensor | None = None
    ) -> None:
        """This epoch's MSE, once: the task's (its step returns the whole-batch MSE), else computed here."""
        if len(self.mse_history) > trainer.current_epoch or self._inputs is None:
            return
        if value is None:
            with torch.no_grad():
                inputs, targets = self._inputs.to(pl_module.device), self._targets.to(pl_module.device)
                value = pl_module.mse(pl_module(inputs), targets)
        self.mse_history.append(float(value))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 < trainer.num_training_batches:
            return
        self._record_epoch(trainer, pl_module, outputs.get("loss") if isinstance(outputs, dict) else None)
        distance = self._distance_to_wiener(_weights(pl_module.net))
        if distance is not None:
            pl_module.log(
                "train/wiener_distance", distance, on_step=False, on_epoch=True, batch_size=len(self._inputs)
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """A diverged run still reports its last MSE (the guard may stop the epoch before this callback saw it)
        and draws its figures; a failed one keeps the weights it reached."""
        if isinstance(exception, TrainingDiverged):
            self._record_epoch(trainer, pl_module)
            self._finish(trainer, pl_module)
        elif self.trained_weights is None:  # not after fit: testing loads the best checkpoint's weights
            self.trained_weights = _weights(pl_module.net)

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trained_weights = _weights(pl_module.net)
        if self.figures:
            self.write_figures(trainer)

    def write_figures(self, trainer: L.Trainer) -> list[Path]:
        """The MSE curve and (for inputs ``[1, x1, x2]``) the planes figure, into the run folder and TensorBoard."""
        if self.wiener is None or self.trained_weights is None:
            return []
        features, targets = self._arrays()
        figures = {
            "lms_mse": plot_mse_curve(
                self.mse_history,
                self.wiener.mse,
                lr=self.base_lr or 0.0,
                convention=self.convention,
                initial_mse=self.initial_mse,
            )
        }
        if features.shape[1] == 3 and self.trained_weights.shape == (3,):
            figures["lms_planes"] = plot_planes(features, targets, self.wiener.weights, self.trained_weights)
        root = Path(trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for name, figure in figures.items():
            pixels = _render(figure)
            path = root / f"{name}.png"
            Image.fromarray(pixels).save(path)
            written.append(path)
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(f"figures/{name}", pixels, trainer.global_step, dataformats="HWC")
        return written

    def run_results(self) -> dict[str, Any]:
        """Reference and outcome of the run for ``metrics.json`` (plain JSON; non-finite values as strings).

        ``final_weights`` are the weights at the end of training (or at divergence), even after testing has
        loaded the best checkpoint.
        """
        if self.wiener is None or self.bounds is None or self.trained_weights is None:
            return {}
        final_mse = self.mse_history[-1] if self.mse_history else self.initial_mse
        distance = self._distance_to_wiener(self.trained_weights)
        return {
            "mse_convention": self.convention,
            "mse_definition": MSE_DEFINITIONS[self.convention],
            "lr": self.base_lr,
            "initial_weights": self.initial_weights,
            "initial_mse": self.initial_mse,
            "final_weights": [_json_number(float(w)) for w in self.trained_weights],
            "final_mse": _json_number(float(final_mse)) if final_mse is not None else None,
            "mse_history": [_json_number(v) for v in self.mse_history],
            "wiener_weights": self.wiener.weights.tolist(),
            "wiener_mse": self.wiener.mse,
            "distance_to_wiener": None if distance is None else _json_number(distance),
            "lambda_max": self.bounds.lambda_max,
            "stability_bound": self.bounds.mean_bound,
            "mean_square_bound": self.bounds.mean_square_bound,
            "num_samples": int(self._inputs.shape[0]) if self._inputs is not None else None,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "mse_history": list(self.mse_history),
            "initial_mse": self.initial_mse,
            "initial_weights": self.initial_weights,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore on resume; testing an earlier (best) checkpoint after fit keeps the current, longer history."""
        if self.mse_history:
            return
        self.mse_history = [float(v) for v in state_dict.get("mse_history", [])]
        self.initial_mse = state_dict.get("initial_mse")
        self.initial_weights = state_dict.get("initial_weights")
