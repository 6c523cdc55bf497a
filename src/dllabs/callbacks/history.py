"""Keep every epoch's logged metrics in memory, for metrics.json and multirun reports."""

from __future__ import annotations

import logging

import lightning as L
import torch

log = logging.getLogger("dllabs")


def _plain(value: object) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().item() if value.numel() == 1 else None
    if isinstance(value, (int, float)):
        return float(value)  # NaN/inf kept on purpose: a diverging run must show it
    return None



class MetricHistory(L.Callback):
    """One dict per finished epoch: ``{"epoch": e, "train/loss": ..., "val/acc": ..., ...}``.

    Non-finite values are kept (as NaN/inf): a diverging run must show it, not hide it.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def _record(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch}
        for key, value in trainer.callback_metrics.items():
            if key.endswith("_step"):
                continue
            number = _plain(value)
            if number is not None:
                row[key.removesuffix("_epoch")] = number
        if self.epochs and self.epochs[-1]["epoch"] == row["epoch"]:
            self.epochs[-1].update(row)
        else:
            self.epochs.append(row)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer)
        if self.epochs and trainer.is_global_zero:
            row = self.epochs[-1]
            values = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and not k.startswith("lr"))
            log.info("epoch %d/%s  %s", row["epoch"] + 1, trainer.max_epochs, values)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._record(trainer)

    def state_dict(self) -> dict:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore on resume; testing an earlier (best) checkpoint after fit keeps the longer, current history."""
        saved = list(state_dict.get("epochs", []))
        if len(saved) > len(self.epochs):
            self.epochs = saved
