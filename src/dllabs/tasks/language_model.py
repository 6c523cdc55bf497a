"""Causal language modelling (GPT-2): next-token loss, perplexity, optimisation.

What the lab reports beyond that (perplexity before training and per epoch, samples before/after, the
``hf_model/`` export, throughput, peak memory) lives in the callbacks of ``conf/callbacks/lm.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from dllabs.errors import ConfigError
from dllabs.lm.perplexity import TokenNLL, causal_lm_logits, token_nll
from dllabs.tasks.base import BaseTask, OptimizerFactory, Regularizer, SchedulerFactory


class LanguageModelTask(BaseTask):
    """Train a causal LM ``net`` on token batches (input_ids, attention_mask, labels with -100 ignored).

    Perplexity: ``val/ppl`` and ``test/ppl`` are exact, ``exp(total NLL / predicted tokens)`` (the monitored
    metric). With ``lab_perplexity`` the lab's evaluation is logged beside it as ``val/ppl_lab_maskcount`` and
    ``test/ppl_lab_maskcount``: the same summed NLL divided by the attention-mask count, which also counts the
    first token of every example (never predicted), so it is lower than the exact number.
    """

    logged_metrics: ClassVar[tuple[str, ...]] = tuple(  # the optimized_metric choices
        f"{role}/{name}" for role in ("val", "test") for name in ("loss", "ppl", "ppl_lab_maskcount")
    ) + ("train/loss", "train/loss_step", "train/loss_epoch", "train/ppl")

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        regularizer: Regularizer | None = None,
        lab_perplexity: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, regularizer)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "regularizer"])
        self.net = net
        self.lab_perplexity = bool(lab_perplexity)
        self.train_nll = TokenNLL()
        self.eval_nll = nn.ModuleDict({"val": TokenNLL(), "test": TokenNLL()})
        self.eval_nll_maskcount = nn.ModuleDict({"val": TokenNLL(), "test": TokenNLL()})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(input_ids=input_ids, attention_mask=attention_mask).logits

    def _nll(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        length = batch["input_ids"].shape[1]
        context = getattr(getattr(self.net, "config", None), "n_positions", None)
        if context and length > context:
            raise ConfigError(f"batches of {length} tokens exceed the model's context of {context} tokens; "
                              f"set data.block_size<={context}")
        return token_nll(causal_lm_logits(self.net, batch), batch["labels"])

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        nll, count = self._nll(batch)
        data_loss = nll / count.clamp(min=1)  # a batch of empty examples: loss 0, no gradient
        loss = data_loss + self.regularization(self.net) if self.regularizer is not None else data_loss
        self.train_nll.update(nll, count)
        self.log("train/loss", data_loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=batch["input_ids"].shape[0])
        return loss

    def _eval_step(self, role: str, batch: Mapping[str, torch.Tensor]) -> None:
        nll, count = self._nll(batch)
        self.eval_nll[role].update(nll, count)
        if self.lab_perplexity:
            mask = batch.get("attention_mask")
            self.eval_nll_maskcount[role].update(nll, mask.sum() if mask is not None else batch["input_ids"].numel())

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def _log_eval(self, role: str) -> None:
        mean = self.eval_nll[role].compute()
        self.eval_nll[role].reset()
        self.log(f"{role}/loss", mean, prog_bar=role == "val")
        self.log(f"{role}/ppl", mean.exp(), prog_bar=role == "val")
        if self.lab_perplexity:
            self.log(f"{role}/ppl_lab_maskcount", self.eval_nll_maskcount[role].compute().exp())
            self.eval_nll_maskcount[role].reset()

    def on_train_epoch_end(self) -> None:
        self.log("train/ppl", self.train_nll.compute().exp())
        self.train_nll.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")
