"""Causal language modelling with a Hugging Face model (GPT-2): full or LoRA fine-tuning, perplexity, samples."""

from __future__ import annotations

import contextlib
import itertools
import logging
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dllabs.errors import ConfigError
from dllabs.lm import finetune as ft
from dllabs.lm.perplexity import TokenNLL, causal_lm_logits, evaluate, sliding_window, token_nll
from dllabs.tasks.base import BaseTask, OptimizerFactory, Regularizer, SchedulerFactory

log = logging.getLogger(__name__)

DEFAULT_PROMPTS = ("The history of the city", "In 1998, the band")


def _plain(value: Any) -> Any:
    """Config nodes as plain dicts/lists (so hyper-parameters and checkpoints hold plain data only)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class LanguageModelTask(BaseTask):
    """Train ``AutoModelForCausalLM`` on token batches (input_ids, attention_mask, labels with -100 ignored).

    ``pretrained`` is a hub name (``gpt2``) or a folder written by ``save_pretrained``; ``architecture`` instead
    builds a randomly initialised model from config values (pipeline checks without weights). ``finetune`` is
    ``{method: full}`` or ``{method: lora, r, lora_alpha, lora_dropout, target_modules, ...}`` (peft LoraConfig).

    Logs train/loss, val/loss, val/ppl (also before training, at step 0), test/loss, test/ppl and, with
    ``perplexity_stride``, test/ppl_sliding. At the end of fitting it writes generated samples to TensorBoard
    and exports the weights (``hf_model/``, plus ``lora_adapter/`` for LoRA) into the run folder.
    """

    def __init__(
        self,
        optimizer: OptimizerFactory,
        pretrained: str | None = "gpt2",
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
        finetune: Mapping[str, Any] | None = None,
        tokenizer: str | None = None,
        architecture: Mapping[str, Any] | None = None,
        dtype: str | None = None,
        local_files_only: bool = False,
        eval_before_training: bool = True,
        perplexity_stride: int | None = None,
        perplexity_window: int | None = None,
        generation: Mapping[str, Any] | None = None,
        prompts: Sequence[str] = DEFAULT_PROMPTS,
        export: bool = True,
    ) -> None:
        super().__init__(optimizer, scheduler, regularizer)
        finetune = _plain(finetune)
        architecture = _plain(architecture)
        generation = _plain(generation) or {}
        prompts = list(_plain(prompts) or [])
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "regularizer"])
        from dllabs.generation import GenerationSettings
        from dllabs.lm.pretrained import build_causal_lm, load_causal_lm, load_tokenizer

        self.method = ft.method_of(finetune)
        if architecture:
            if pretrained:
                raise ConfigError("set either model.pretrained (load weights) or model.architecture (random init)")
            if not tokenizer:
                raise ConfigError("model.architecture (random init) needs a tokenizer: set data.tokenizer=<folder>")
            self.tokenizer = load_tokenizer(tokenizer, local_files_only=local_files_only)
            base = build_causal_lm(architecture, vocab_size=len(self.tokenizer), dtype=dtype)
        else:
            self.tokenizer = load_tokenizer(tokenizer or pretrained, local_files_only=local_files_only)
            base = load_causal_lm(pretrained, dtype=dtype, local_files_only=local_files_only)
        self.model = ft.prepare(base, finetune).train()  # from_pretrained returns eval mode (dropout off)
        self.param_counts = ft.parameter_counts(self.model)
        log.info("%s fine-tuning: %d trainable of %d parameters (%.2f%%)", self.method,
                 self.param_counts["trainable"], self.param_counts["total"], self.param_counts["trainable_percent"])
        self.generation = GenerationSettings(**generation)
        self.prompts = prompts
        self.eval_before_training = eval_before_training
        self.perplexity_stride = perplexity_stride
        self.perplexity_window = perplexity_window
        self.export_weights = export
        self.train_nll, self.val_nll, self.test_nll = TokenNLL(), TokenNLL(), TokenNLL()
        self.record: dict[str, Any] = {"val_before": None, "val_per_epoch": [], "val_loss_per_epoch": [],
                                       "train_loss_per_epoch": [], "test": None, "test_sliding": None,
                                       "train_tokens": 0, "train_padded_tokens": 0, "train_time_s": 0.0}
        self.samples: list[dict[str, str]] = []
        self.exports: dict[str, str] = {}
        self._fit_started = 0.0
        self._batch_started = 0.0
        self.fit_wall_time_s: float | None = None
        self.peak_memory: dict[str, Any] = {}

    # ------------------------------------------------------------------ steps
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def _nll(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return token_nll(causal_lm_logits(self.model, batch), batch["labels"])

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        nll, count = self._nll(batch)
        data_loss = nll / count.clamp(min=1)
        loss = data_loss + self.regularization(self.model) if self.regularizer is not None else data_loss
        self.train_nll.update(nll, count)
        size = batch["input_ids"].shape[0]
        self.log("train/loss", data_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self.val_nll.update(*self._nll(batch))

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self.test_nll.update(*self._nll(batch))

    def on_train_epoch_end(self) -> None:
        mean = self.train_nll.compute()
        self.train_nll.reset()
        self.log("train/ppl", mean.exp())
        self.record["train_loss_per_epoch"].append(float(mean))

    def on_validation_epoch_end(self) -> None:
        mean = self.val_nll.compute()
        self.val_nll.reset()
        self.log("val/loss", mean, prog_bar=True)
        self.log("val/ppl", mean.exp(), prog_bar=True)
        if not self.trainer.sanity_checking:
            self.record["val_loss_per_epoch"].append(float(mean))
            self.record["val_per_epoch"].append(float(mean.exp()))

    def on_test_epoch_end(self) -> None:
        mean = self.test_nll.compute()
        self.test_nll.reset()
        self.log("test/loss", mean)
        self.log("test/ppl", mean.exp())
        self.record["test"] = float(mean.exp())
        if self.perplexity_stride:
            result = self.sliding_window_perplexity(role="test")
            self.log("test/ppl_sliding", result["ppl"])
            self.record["test_sliding"] = result["ppl"]

    # ------------------------------------------------------------------ perplexity helpers
    def _autocast(self) -> Callable[[], contextlib.AbstractContextManager]:
        """A factory of the trainer's evaluation precision context (autocast under bf16-mixed)."""
        trainer = self._trainer
        return trainer.precision_plugin.val_step_context if trainer is not None else contextlib.nullcontext

    def _datamodule(self) -> Any:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            raise ConfigError("this needs the WikiText datamodule attached to the trainer (trainer.fit(task, datamodule))")
        return datamodule

    def max_positions(self) -> int | None:
        config = self.model.config
        return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)

    def sliding_window_perplexity(self, role: str = "test") -> dict[str, float]:
        """Perplexity of the role's whole text in windows of ``perplexity_window`` (default: the model's
        context) moved by ``perplexity_stride``."""
        window = int(self.perplexity_window or self.max_positions() or 1024)
        stride = int(self.perplexity_stride or window)
        tokens = self._datamodule().token_stream(role)
        return sliding_window(self.model, tokens, window, min(stride, window), self.device, self._autocast())

    # ------------------------------------------------------------------ fit hooks
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        block_size = getattr(datamodule, "block_size", None)
        limit = self.max_positions()
        if block_size and limit and block_size > limit:
            raise ConfigError(f"data.block_size={block_size} exceeds the model's context of {limit} tokens; "
                              f"set data.block_size<={limit}")
        self._fit_started = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        for logger in self.loggers:
            logger.log_metrics({"params/trainable": float(self.param_counts["trainable"]),
                                "params/total": float(self.param_counts["total"])}, step=0)

    def on_train_start(self) -> None:
        if not self.eval_before_training or self.record["val_before"] is not None or self.trainer.current_epoch > 0:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            log.warning("no datamodule attached: perplexity before training is not measured")
            return
        loader = datamodule.val_dataloader()
        result = evaluate(self.model, self._limit_val_batches(loader), self.device, self._autocast())
        self.record["val_before"] = result["ppl"]
        log.info("validation perplexity before training: %.3f (%d tokens)", result["ppl"], result["tokens"])
        for logger in self.loggers:
            logger.log_metrics({"val/ppl": result["ppl"], "val/loss": result["nll_sum"] / max(1, result["tokens"])},
                               step=0)

    def _limit_val_batches(self, loader: Any) -> Any:
        """The batches the trainer's validation sees too (``trainer.limit_val_batches``), so before/after compare."""
        limit = self.trainer.limit_val_batches
        if limit is None or (isinstance(limit, float) and limit >= 1.0):
            return loader
        count = int(limit) if isinstance(limit, int) else max(1, int(len(loader) * limit))
        return itertools.islice(loader, count)

    def on_train_batch_start(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.record["train_time_s"] += time.perf_counter() - self._batch_started
        mask = batch.get("attention_mask")
        self.record["train_tokens"] += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        self.record["train_padded_tokens"] += batch["input_ids"].numel()

    def on_fit_end(self) -> None:
        self.fit_wall_time_s = time.perf_counter() - self._fit_started
        self.peak_memory = self._peak_memory()
        if not self.trainer.is_global_zero:
            return
        if self.prompts:
            self.samples = self.generate(self.prompts)
            self._log_samples()
        if self.export_weights:
            self.exports = ft.export(self.model, self.tokenizer, Path(self.trainer.default_root_dir))

    def _peak_memory(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            return {"peak_memory_mb": torch.cuda.max_memory_allocated(self.device) / 2**20,
                    "peak_memory_kind": "cuda max_memory_allocated"}
        return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peak_memory_kind": "process peak RSS (CPU)"}

    def _log_samples(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if isinstance(experiment, SummaryWriter):
                for index, sample in enumerate(self.samples):
                    text = f"**{sample['prompt']}**\n\n{sample['text']}"
                    experiment.add_text(f"samples/{index}", text, global_step=self.global_step)

    # ------------------------------------------------------------------ public API
    def generate(self, prompts: Sequence[str], **overrides: Any) -> list[dict[str, str]]:
        """Continue ``prompts`` with the current weights (settings: ``generation`` plus ``overrides``)."""
        from dataclasses import replace

        from dllabs.generation import generate

        return generate(self.model, self.tokenizer, list(prompts), replace(self.generation, **overrides))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lm_record"] = dict(self.record)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming a fit restores the perplexity record; testing a checkpoint keeps this run's record."""
        trainer = self._trainer
        if trainer is not None and trainer.state.fn == "fit":
            self.record.update(checkpoint.get("lm_record", {}))

    def run_results(self) -> dict[str, Any]:
        """Plain-data summary stored under ``results`` in metrics.json (read by scripts/compare_lm.py)."""
        record = self.record
        seconds = record["train_time_s"]
        per_epoch = record["val_per_epoch"]
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return {
            "finetune": self.method,
            "pretrained": self.hparams.get("pretrained"),
            "params": dict(self.param_counts),
            "perplexity": {
                "val_before": record["val_before"],
                "val_after": per_epoch[-1] if per_epoch else None,
                "val_best": min(per_epoch) if per_epoch else None,
                "val_per_epoch": list(per_epoch),
                "test": record["test"],
                "test_sliding": record["test_sliding"],
                "sliding_stride": self.perplexity_stride,
            },
            "loss_per_epoch": {"train": list(record["train_loss_per_epoch"]), "val": list(record["val_loss_per_epoch"])},
            "train_tokens": record["train_tokens"],
            "tokens_per_s": record["train_tokens"] / seconds if seconds else None,
            "padded_tokens_per_s": record["train_padded_tokens"] / seconds if seconds else None,
            "train_time_s": seconds,
            "fit_wall_time_s": self.fit_wall_time_s,
            **self.peak_memory,
            "samples": list(self.samples),
            "exports": dict(self.exports),
            "data": datamodule.describe() if hasattr(datamodule, "describe") else None,
        }
