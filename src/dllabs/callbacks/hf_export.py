"""Export the trained causal LM where ``from_pretrained`` can reload it: ``hf_model/`` (+ ``lora_adapter/``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

from dllabs.callbacks.results import ResultsCallback
from dllabs.lm import finetune as ft

log = logging.getLogger("dllabs")


class HuggingFaceExport(ResultsCallback):
    """When fitting ends, save the task's ``net`` with the data module's tokenizer into the run folder:
    ``hf_model/`` (for LoRA the merged weights) and, for LoRA, ``lora_adapter/`` (peft ``save_pretrained``)."""

    def __init__(self) -> None:
        self.exports: dict[str, str] = {}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        net = getattr(pl_module, "net", None)
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if tokenizer is None or not hasattr(net, "save_pretrained"):
            log.warning("the Hugging Face export needs a transformers net and a data module with a tokenizer; skipped")
            return
        self.exports = ft.export(net, tokenizer, Path(trainer.default_root_dir))

    def run_results(self) -> dict[str, Any]:
        return {"exports": dict(self.exports)} if self.exports else {}
