"""Regression trained one sample at a time (LMS), with the Wiener solution as the reference.

Each training batch (the LMS datamodule gives one per epoch: the whole dataset) is walked sample by sample inside
one Lightning step: for every sample the optimizer takes one step on ``e^2 / 2`` with ``e = d - y``. With
``optimizer=sgd`` (no momentum, no weight decay) and a linear net that is exactly the LMS rule
``w <- w + r e x`` with ``r = optimizer.lr``; other optimizers and a regularizer (leaky LMS) work the same way.

After the batch the task logs the MSE over it (``train/mse``; the whole-dataset MSE when the batch is the
dataset) and returns it as the step's loss, so the divergence guard stops a run whose MSE is no longer finite.
``mse`` picks how every reported MSE is scaled (``mean`` or ``half_mean``); the update rule does not depend on it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from dllabs.analysis.lms import (
    MSE_DEFINITIONS,
    MSE_SCALES,
    StabilityBounds,
    WienerSolution,
    check_convention,
    plot_mse_curve,
    plot_planes,
    stability_bounds,
    wiener_solution,
)
from dllabs.errors import ConfigError
from dllabs.tasks.base import BaseTask, OptimizerFactory, Regularizer, SchedulerFactory

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


class RegressionTask(BaseTask):
    """Fit ``net`` to targets with one optimizer step per sample; batches are ``(inputs, targets)``."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
        mse: str = "mean",
        figures: bool = True,
    ) -> None:
        super().__init__(optimizer, scheduler, regularizer)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "regularizer"])
        self.automatic_optimization = False
        self.net = net
        self.mse_convention = check_convention(mse)
        self.figures = figures
        self.mse_history: list[float] = []
        self.wiener: WienerSolution | None = None
        self.bounds: StabilityBounds | None = None
        self.initial_mse: float | None = None
        self.initial_weights: list[float] | None = None
        self.base_lr: float | None = None
        self.trained_weights: np.ndarray | None = None
        self._training_arrays: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def mse(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean squared error under the configured convention."""
        return MSE_SCALES[self.mse_convention] * torch.mean((targets - predictions) ** 2)

    def configure_optimizers(self) -> Any:
        """As :class:`BaseTask`, but a schedule counts one step per sample (the task steps it itself)."""
        optimizer = self.optimizer_factory(self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        self.trainer.estimated_stepping_batches  # noqa: B018 - loads the training data so its size is known
        steps_per_epoch = len(self.trainer.train_dataloader.dataset)
        epochs = self.trainer.max_epochs
        if epochs is None or epochs < 0:
            total_steps = int(self.trainer.max_steps)
        else:
            total_steps = steps_per_epoch * epochs
        scheduler = self.scheduler_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _weights(self) -> np.ndarray:
        weight_vector = getattr(self.net, "weight_vector", None)
        if weight_vector is None:
            return np.concatenate(
                [p.detach().cpu().double().flatten().numpy() for p in self.net.parameters()]
            )
        return weight_vector.cpu().double().numpy()

    def _distance_to_wiener(self, weights: np.ndarray) -> float | None:
        """Euclidean distance to W*, or None when the net's parameters are not one weight per input."""
        if self.wiener is None or weights.shape != self.wiener.weights.shape:
            return None
        return float(np.linalg.norm(weights - self.wiener.weights))

    def _collect_training_data(self) -> tuple[np.ndarray, np.ndarray]:
        batches = list(self.trainer.train_dataloader)
        features = torch.cat([inputs for inputs, _ in batches]).cpu().double().numpy()
        targets = torch.cat([target for _, target in batches]).cpu().double().numpy().reshape(-1)
        expected = getattr(self.net, "in_features", features.shape[1])
        if features.shape[1] != expected:
            raise ConfigError(
                f"the data has {features.shape[1]} inputs per sample (bias column included) but "
                f"model.net.in_features={expected}; set model.net.in_features={features.shape[1]} and give "
                f"model.net.initial_weights {features.shape[1]} values"
            )
        return features, targets

    def on_train_start(self) -> None:
        features, targets = self._collect_training_data()
        self._training_arrays = (features, targets)
        self.wiener = wiener_solution(features, targets, self.mse_convention)
        self.bounds = stability_bounds(features)
        self.base_lr = float(self.optimizers().param_groups[0]["lr"])
        if self.initial_weights is None:
            self.initial_weights = self._weights().tolist()
            with torch.no_grad():
                inputs = torch.as_tensor(features, dtype=torch.float32, device=self.device)
                predictions = self.net(inputs).double().cpu()
            self.initial_mse = float(self.mse(predictions, torch.as_tensor(targets)))
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("reference/wiener", self._reference_text(), self.global_step)

    def _reference_text(self) -> str:
        assert self.wiener is not None and self.bounds is not None
        weights = ", ".join(f"{w:.6f}" for w in self.wiener.weights)
        return (
            f"Wiener W* = [{weights}], MSE at W* = {self.wiener.mse:.6g} "
            f"({MSE_DEFINITIONS[self.mse_convention]}); "
            f"2/lambda_max(R) = {self.bounds.mean_bound:.4g}, 2/trace(R) = {self.bounds.mean_square_bound:.4g}"
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        for sample, target in zip(inputs, targets):
            optimizer.zero_grad()
            error = target - self.net(sample.unsqueeze(0)).squeeze(0)
            loss = 0.5 * error * error
            if self.regularizer is not None:
                loss = loss + self.regularization(self.net)
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        with torch.no_grad():
            epoch_mse = self.mse(self.net(inputs), targets)
        value = float(epoch_mse)
        self.mse_history.append(value)
        size = targets.shape[0]
        self.log("train/mse", epoch_mse, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        distance = self._distance_to_wiener(self._weights())
        if distance is not None:
            self.log("train/wiener_distance", distance, on_step=False, on_epoch=True, batch_size=size)
        if not math.isfinite(value):
            self._finish_training()
        return epoch_mse

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        self.log("val/mse", self.mse(self.net(inputs), targets), prog_bar=True, batch_size=targets.shape[0])

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        self.log("test/mse", self.mse(self.net(inputs), targets), batch_size=targets.shape[0])

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self.net(batch[0])

    def on_train_end(self) -> None:
        self._finish_training()

    def _finish_training(self) -> None:
        self.trained_weights = self._weights()
        self.write_figures()

    def write_figures(self) -> list[Path]:
        """The MSE curve and (for inputs ``[1, x1, x2]``) the planes figure, into the run folder and TensorBoard."""
        if not self.figures or self.wiener is None or self._training_arrays is None:
            return []
        features, targets = self._training_arrays
        figures = {
            "lms_mse": plot_mse_curve(
                self.mse_history,
                self.wiener.mse,
                lr=self.base_lr or 0.0,
                convention=self.mse_convention,
                initial_mse=self.initial_mse,
            )
        }
        weights = self._weights()
        if features.shape[1] == 3 and weights.shape == (3,):
            figures["lms_planes"] = plot_planes(features, targets, self.wiener.weights, weights)
        root = Path(self.trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for name, figure in figures.items():
            pixels = _render(figure)
            path = root / f"{name}.png"
            Image.fromarray(pixels).save(path)
            written.append(path)
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(
                        f"figures/{name}", pixels, self.global_step, dataformats="HWC"
                    )
        return written

    def run_results(self) -> dict[str, Any]:
        """Reference and outcome of the run for ``metrics.json`` (plain JSON; non-finite values as strings).

        ``final_weights`` are the weights at the end of training (or at divergence), even after testing has
        loaded the best checkpoint.
        """
        if self.wiener is None or self.bounds is None:
            return {}
        final_weights = self.trained_weights if self.trained_weights is not None else self._weights()
        final_mse = self.mse_history[-1] if self.mse_history else self.initial_mse
        distance = self._distance_to_wiener(final_weights)
        return {
            "mse_convention": self.mse_convention,
            "mse_definition": MSE_DEFINITIONS[self.mse_convention],
            "lr": self.base_lr,
            "initial_weights": self.initial_weights,
            "initial_mse": self.initial_mse,
            "final_weights": [_json_number(float(w)) for w in final_weights],
            "final_mse": _json_number(float(final_mse)) if final_mse is not None else None,
            "mse_history": [_json_number(v) for v in self.mse_history],
            "wiener_weights": self.wiener.weights.tolist(),
            "wiener_mse": self.wiener.mse,
            "distance_to_wiener": None if distance is None else _json_number(distance),
            "lambda_max": self.bounds.lambda_max,
            "stability_bound": self.bounds.mean_bound,
            "mean_square_bound": self.bounds.mean_square_bound,
            "num_samples": int(self._training_arrays[0].shape[0]) if self._training_arrays else None,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lms_state"] = {
            "mse_history": list(self.mse_history),
            "initial_mse": self.initial_mse,
            "initial_weights": self.initial_weights,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.mse_history:
            return
        state = checkpoint.get("lms_state", {})
        self.mse_history = [float(v) for v in state.get("mse_history", [])]
        self.initial_mse = state.get("initial_mse")
        self.initial_weights = state.get("initial_weights")
