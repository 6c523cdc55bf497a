"""Continuations of fixed prompts by the untouched and the trained model, side by side (TensorBoard text and
``metrics.json`` ``results.samples``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
from omegaconf import DictConfig, ListConfig, OmegaConf

from dllabs.callbacks.results import ResultsCallback
from dllabs.lm.text_generation import GenerationOverrides, generate, settings_from

log = logging.getLogger("dllabs")

LAB_PROMPT = "GPT-2 is a langugae model based on transformer(s) developed by OpenAI"  # (sic) the lab's prompt


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


class TextSamples(ResultsCallback):
    """Continue ``prompts`` when training starts (``before``) and when it ends, with ``generation`` settings
    (overrides of :class:`~dllabs.lm.text_generation.GenerationSettings`; unset or null keys keep its defaults, greedy).

    The model is the task's ``net``; the tokenizer is the data module's (``trainer.datamodule.tokenizer``).
    Runs whose data module has no tokenizer are skipped with a warning.
    """

    def __init__(self, prompts: Sequence[str] = (LAB_PROMPT,), generation: GenerationOverrides | None = None,
                 before: bool = True) -> None:
        self.prompts = [str(prompt) for prompt in _plain(prompts) or []]
        self.settings = settings_from(dict(_plain(generation) or {}))
        self.settings.generate_kwargs()  # a bad setting fails now, not after training
        self.before = bool(before)
        self.samples_before: list[dict[str, str]] = []
        self.samples_after: list[dict[str, str]] = []

    def _generate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[dict[str, str]]:
        if not self.prompts or not trainer.is_global_zero:
            return []
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        net = getattr(pl_module, "net", None)
        if tokenizer is None or not hasattr(net, "generate"):
            log.warning("text samples need a generating net and a data module with a tokenizer; skipped")
            return []
        return generate(net, tokenizer, self.prompts, self.settings)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.before and trainer.global_step == 0 and not self.samples_before:
            self.samples_before = self._generate(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples_after = self._generate(trainer, pl_module)
        if self.samples_after:
            self._log_text(trainer)

    def side_by_side(self) -> list[dict[str, str | None]]:
        """One entry per output: the prompt, the trained model's text and the untouched model's text."""
        before = {index: sample["text"] for index, sample in enumerate(self.samples_before)}
        return [{"prompt": sample["prompt"], "text": sample["text"], "text_before": before.get(index)}
                for index, sample in enumerate(self.samples_after)]

    def _log_text(self, trainer: L.Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if not isinstance(experiment, SummaryWriter):
                continue
            for index, sample in enumerate(self.side_by_side()):
                lines = [f"**{sample['prompt']}**", "", "| before training | after training |", "|---|---|",
                         f"| {_cell(sample['text_before'])} | {_cell(sample['text'])} |"]
                experiment.add_text(f"samples/{index}", "\n".join(lines), global_step=trainer.global_step)

    def run_results(self) -> dict[str, Any]:
        if not self.samples_after and not self.samples_before:
            return {}
        return {"samples": self.side_by_side(), "generation": {"prompts": list(self.prompts),
                                                               **self.settings.generate_kwargs()}}

    def state_dict(self) -> dict[str, Any]:
        return {"samples_before": self.samples_before}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples_before = list(state_dict.get("samples_before", []))


def _cell(text: str | None) -> str:
    return "-" if text is None else " ".join(text.split()).replace("|", "\\|")
