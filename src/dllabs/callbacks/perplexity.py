"""The perplexity record of a language-model run: before training, per epoch, on test; parameter counts."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

from dllabs.callbacks.results import ResultsCallback
from dllabs.lm import finetune as ft
from dllabs.lm.perplexity import sliding_window

log = logging.getLogger("dllabs")


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().item()) if value.numel() == 1 else None
    return float(value) if isinstance(value, (int, float)) else None


class PerplexityRecord(ResultsCallback):
    """Record what the task logs (``val/ppl``, ``val/loss``, ``train/loss``, ``test/ppl``, and the lab's
    ``*/ppl_lab_maskcount`` when the task logs them) into ``metrics.json`` ``results``.

    ``before_fit``: run the trainer's own validation loop once when training starts (same batches, same
    ``limit_val_batches``, same precision as every later validation), so ``val/ppl`` of the untouched model is
    logged at step 0 and recorded as ``val_before``. Not repeated when a run resumes past step 0.

    ``sliding_stride``: also ``test/ppl_sliding``, the whole test text scored in windows of ``sliding_window``
    tokens (default: the model's context) moved by this stride (the Hugging Face perplexity guide); it needs a
    data module with ``token_stream(role)``.
    """

    def __init__(self, before_fit: bool = True, sliding_stride: int | None = None,
                 sliding_window: int | None = None) -> None:
        self.before_fit = bool(before_fit)
        self.sliding_stride = sliding_stride
        self.sliding_window = sliding_window
        self.record: dict[str, Any] = {
            "val_before": None, "val_per_epoch": [], "val_loss_per_epoch": [], "train_loss_per_epoch": [],
            "val_lab_maskcount_before": None, "val_lab_maskcount_per_epoch": [],
            "test": None, "test_lab_maskcount": None, "test_sliding": None,
        }
        self.params: dict[str, float] = {}
        self.method: str | None = None
        self.pretrained: str | None = None
        self.data: dict[str, Any] | None = None
        self._validating_before = False

    # ----------------------------------------------------------------- what the net and data are
    def _describe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = getattr(pl_module, "net", pl_module)
        self.params = ft.parameter_counts(net)
        self.method = "lora" if ft.is_peft(net) else "full"
        config = getattr(net, "config", None)
        self.pretrained = getattr(config, "name_or_path", None) or None
        describe = getattr(trainer.datamodule, "describe", None)
        if callable(describe):
            self.data = describe()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._describe(trainer, pl_module)
        for logger in trainer.loggers:
            logger.log_metrics({"params/trainable": float(self.params["trainable"]),
                                "params/total": float(self.params["total"])}, step=0)

    # ----------------------------------------------------------------- before training
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.before_fit or trainer.global_step > 0 or not trainer.enable_validation:
            return
        loop = trainer.fit_loop.epoch_loop.val_loop
        first_loop_iter = trainer._logger_connector._first_loop_iter
        self._validating_before = True
        try:
            trainer.validating = True  # as the training loop does before each of its validations
            loop.run()
        finally:
            self._validating_before = False
            trainer.training = True
            trainer._logger_connector._first_loop_iter = first_loop_iter

    # ----------------------------------------------------------------- per epoch and test
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = trainer.callback_metrics
        ppl, maskcount = _number(metrics.get("val/ppl")), _number(metrics.get("val/ppl_lab_maskcount"))
        if self._validating_before:
            self.record["val_before"] = ppl
            self.record["val_lab_maskcount_before"] = maskcount
            log.info("validation perplexity before training: %s", ppl)
            return
        if ppl is not None:
            self.record["val_per_epoch"].append(ppl)
            self.record["val_loss_per_epoch"].append(_number(metrics.get("val/loss")))
        if maskcount is not None:
            self.record["val_lab_maskcount_per_epoch"].append(maskcount)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = _number(trainer.callback_metrics.get("train/loss_epoch"))
        if loss is not None:
            self.record["train_loss_per_epoch"].append(loss)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.sliding_stride:
            return
        token_stream = getattr(trainer.datamodule, "token_stream", None)
        if not callable(token_stream):
            log.warning("sliding-window perplexity needs a data module with token_stream(); skipped")
            return
        net = pl_module.net
        config = getattr(net, "config", None)
        window = int(self.sliding_window or getattr(config, "n_positions", None) or 1024)
        stride = min(int(self.sliding_stride), window)
        result = sliding_window(net, token_stream("test"), window, stride, pl_module.device,
                                trainer.precision_plugin.val_step_context)
        self.record["test_sliding"] = result["ppl"]
        pl_module.log("test/ppl_sliding", result["ppl"])

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.record["test"] = _number(metrics.get("test/ppl"))
        self.record["test_lab_maskcount"] = _number(metrics.get("test/ppl_lab_maskcount"))
        if not self.params:
            self._describe(trainer, pl_module)

    # ----------------------------------------------------------------- results and resume
    def run_results(self) -> dict[str, Any]:
        record = self.record
        per_epoch = record["val_per_epoch"]
        if not per_epoch and record["val_before"] is None and record["test"] is None:
            return {}  # not a language-model run
        perplexity = {
            "val_before": record["val_before"],
            "val_after": per_epoch[-1] if per_epoch else None,
            "val_best": min(per_epoch) if per_epoch else None,
            "val_per_epoch": list(per_epoch),
            "test": record["test"],
            "test_sliding": record["test_sliding"],
            "sliding_stride": self.sliding_stride,
        }
        if record["val_lab_maskcount_before"] is not None or record["val_lab_maskcount_per_epoch"]:
            maskcount = record["val_lab_maskcount_per_epoch"]
            perplexity["lab_maskcount"] = {  # the lab's definition: summed NLL / attention-mask count
                "val_before": record["val_lab_maskcount_before"],
                "val_after": maskcount[-1] if maskcount else None,
                "val_per_epoch": list(maskcount),
                "test": record["test_lab_maskcount"],
            }
        return {
            "finetune": self.method,
            "pretrained": self.pretrained,
            "params": dict(self.params),
            "perplexity": perplexity,
            "loss_per_epoch": {"train": list(record["train_loss_per_epoch"]), "val": list(record["val_loss_per_epoch"])},
            "data": self.data,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"record": self.record}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.record.update(state_dict.get("record", {}))
