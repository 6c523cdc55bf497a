"""Optimiser, scheduler and regulariser wiring shared by every task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from dllabs.analysis.example_inputs import example_inputs
from dllabs.errors import ConfigError

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
Regularizer = Callable[[nn.Module], torch.Tensor]


class BaseTask(L.LightningModule):
    """A LightningModule that receives its optimiser, scheduler and regulariser as factories from the config.

    ``optimizer(params)`` builds the optimiser; ``scheduler(optimizer, total_steps=, steps_per_epoch=)`` builds
    a per-step LR schedule (or is ``None``); ``regularizer(module)`` returns a penalty added to the loss.
    """

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.regularizer = regularizer
        self._held_step_values: dict[str, tuple[torch.Tensor, int]] = {}  # see log_step_value

    @property
    def example_input_array(self) -> Any:
        """A seeded batch of one for the net (read off its first layer), so the model summary shows real FLOPs
        and input/output sizes; None for a task without such a net. Made on first use, with its own generator."""
        net = getattr(self, "net", None)
        if self._example_input_array is None and isinstance(net, nn.Module):
            try:
                self._example_input_array = tuple(example_inputs(net))
            except ConfigError:
                return None
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, example: Any) -> None:
        self._example_input_array = example

    def regularization(self, module: nn.Module) -> torch.Tensor:
        """The configured penalty on ``module``'s weights, or zero."""
        if self.regularizer is None:
            return torch.zeros((), device=self.device)
        return self.regularizer(module).to(self.device)

    def step_value_shown(self) -> bool:
        """Whether a value logged in this training step reaches anyone: an enabled progress bar shows every step's,
        and a logger writes one every ``trainer.log_every_n_steps`` optimiser steps (Lightning's rule: the step
        count before this step, plus one, is a multiple of it). ``self.log`` costs about 0.4 ms a call on a CPU
        (Lightning walks and copies its record of the value), 1-2% of a SimpleNN step, so a per-step value that
        nothing would read is not logged (benchmarks/bench_cifar.py). False for a step called without a Trainer."""
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer: self.log would only warn
            return False
        bar = trainer.progress_bar_callback
        if bar is not None and bar.is_enabled:
            return True
        every = trainer.log_every_n_steps
        return bool(trainer.loggers) and every > 0 and (trainer.global_step + 1) % every == 0

    def log_step_value(self, name: str, value: torch.Tensor, batch_size: int) -> None:
        """Log a training step's value (progress bar and loggers) when ``step_value_shown()``; else hold it until
        the batch's end, where it is logged if the run was told to stop meanwhile (see ``on_train_batch_end``)."""
        if self.step_value_shown():
            self._log_on_step(name, value, batch_size)
        else:
            self._held_step_values[name] = (value, batch_size)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Lightning's loggers also write a step's values off their interval when the run is told to stop in that
        batch's end hooks (``trainer.should_stop``: a callback, e.g. ``max_time``, which run before this hook), so
        the values ``log_step_value`` held back are logged then."""
        held, self._held_step_values = self._held_step_values, {}
        trainer = self.trainer
        if held and trainer.should_stop and trainer.loggers and trainer.log_every_n_steps > 0:
            for name, (value, batch_size) in held.items():
                self._log_on_step(name, value, batch_size)

    def _log_on_step(self, name: str, value: torch.Tensor, batch_size: int) -> None:
        self.log(name, value, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def schedule_steps(self) -> tuple[int, int]:
        """``(total_steps, steps_per_epoch)`` of the LR schedule: optimizer steps, as Lightning estimates them."""
        total_steps = int(self.trainer.estimated_stepping_batches)
        return total_steps, max(1, total_steps // max(1, self.trainer.max_epochs or 1))

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        total_steps, steps_per_epoch = self.schedule_steps()
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
