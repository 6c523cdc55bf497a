"""Training throughput in tokens per second (Lightning's ``ThroughputMonitor``) and peak memory of a run."""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities import rank_zero_only

from dllabs.callbacks.results import ResultsCallback


def batch_rows(batch: Any) -> int:
    """Examples in a batch: a dict of token tensors, or a tuple whose first element is the input."""
    first = batch["input_ids"] if isinstance(batch, Mapping) else batch[0]
    return int(first.shape[0])


def batch_tokens(batch: Any) -> int:
    """Real (unpadded) tokens of a token batch; the number of examples for any other batch."""
    if not isinstance(batch, Mapping):
        return batch_rows(batch)
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class TokenThroughput(ThroughputMonitor, ResultsCallback):
    """Lightning's throughput monitor (logs ``train|device|items_per_sec`` = tokens/s, ...) whose totals over the
    fit also go to ``metrics.json``: ``train_tokens``, ``train_time_s`` (validation excluded), ``tokens_per_s``,
    ``padded_tokens_per_s`` (padding counted, what the hardware processed), ``fit_wall_time_s`` and
    ``train_steps`` (optimiser steps of the whole fit, resumed ones included).

    List it after the callbacks that work when training starts (evaluation and samples before training), so its
    clock starts after them.
    """

    def __init__(self, window_size: int = 100) -> None:
        super().__init__(batch_size_fn=batch_rows, length_fn=batch_tokens, window_size=window_size)
        self._module_has_flops = False  # no FLOP count: tokens/s is the measure here
        self.padded_tokens = 0
        self._fit_started: float | None = None
        self.fit_wall_time_s: float | None = None
        self.train_steps: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_started = time.perf_counter()
        self.padded_tokens = 0

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, *args)
        self.padded_tokens += int(batch["input_ids"].numel()) if isinstance(batch, Mapping) else batch_rows(batch)

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if RunningStage.TRAINING in self._t0s:  # a validation before training started has no clock to shift
            super().on_validation_end(trainer, *args)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fit_started is not None:
            self.fit_wall_time_s = time.perf_counter() - self._fit_started
        self.train_steps = int(trainer.global_step)

    def run_results(self) -> dict[str, Any]:
        throughput = self._throughputs.get(RunningStage.TRAINING)
        times = list(throughput._time) if throughput is not None else []
        seconds = float(times[-1]) if times else 0.0
        tokens = int(self._lengths.get(RunningStage.TRAINING, 0))
        if not tokens:
            return {}
        return {
            "train_tokens": tokens,
            "train_time_s": seconds,
            "tokens_per_s": tokens / seconds if seconds else None,
            "padded_tokens_per_s": self.padded_tokens / seconds if seconds else None,
            "fit_wall_time_s": self.fit_wall_time_s,
            "train_steps": self.train_steps,
        }


class PeakMemory(ResultsCallback):
    """Peak memory of the fit: CUDA ``max_memory_allocated`` on a GPU, else the process's peak RSS."""

    def __init__(self) -> None:
        self.peak: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            self.peak = {"peak_memory_mb": torch.cuda.max_memory_allocated(pl_module.device) / 2**20,
                         "peak_memory_kind": "cuda max_memory_allocated"}
        else:
            self.peak = {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                         "peak_memory_kind": "process peak RSS (CPU)"}

    def run_results(self) -> dict[str, Any]:
        return dict(self.peak)
