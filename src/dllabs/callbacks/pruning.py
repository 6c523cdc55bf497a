"""Report each validation epoch's ``optimized_metric`` to the Optuna trial a run is, and stop it when pruned.

Inert outside an Optuna search (no trial in the environment, see :mod:`dllabs.search.study`). In a search, the
job reaches the study through its storage, so this works for jobs in the sweeper's process and for jobs in
other processes or on other machines (``hydra/launcher=local``, ``slurm``). The pruner is the sweeper's
(``hydra.sweeper.pruner``, read from the job's Hydra config). The step reported is the number of epochs trained
(1 after the first epoch): the pruners' resource, so ``min_resource: 1`` or ``n_warmup_steps: 3`` count epochs.

A pruned run stops like a finished one after that epoch (its :class:`~dllabs.callbacks.run_record.RunRecord` is
told ``pruned``, which stops training; the best checkpoint is still tested), so it keeps its checkpoints, history
and curves; ``metrics.json``, HParams and ``scripts/report.py`` say ``pruned`` and ``pruned_at_epoch``. The trial is
told PRUNED by the sweeper, which reads the trial's ``pruned_at_epoch`` attribute.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig

from dllabs.callbacks.run_record import RunRecord
from dllabs.search.study import PRUNED_AT, trial_of_this_job

log = logging.getLogger("dllabs")


class OptunaPruning(L.Callback):
    """Optuna's pruning for a Lightning run: ``trial.report(monitor, epochs trained)``, then ``trial.should_prune()``."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.trial: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero or not HydraConfig.initialized():
            return
        self.trial = trial_of_this_job(HydraConfig.get().sweeper.get("pruner"), max_epochs=trainer.max_epochs)
        if self.trial is not None:
            log.info("Optuna trial %d: reporting %s each validation epoch", self.trial.number, self.monitor)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch, value, pruned = trainer.current_epoch, None, False
        if self.trial is not None and self.monitor in trainer.callback_metrics:
            value = float(trainer.callback_metrics[self.monitor])
            if math.isfinite(value):  # a NaN is the divergence guard's to report
                self.trial.report(value, step=epoch + 1)  # epochs trained: the resource the pruners count
                pruned = self.trial.should_prune()
        if trainer.world_size > 1:
            pruned = trainer.strategy.broadcast(pruned)
        if not pruned:
            return
        why = f"pruned by the Optuna search after epoch {epoch}"
        if self.trial is not None:
            why += f" ({self.monitor} {value:.6g}, trial {self.trial.number})"
            self.trial.set_user_attr(PRUNED_AT, epoch)
        log.info("%s; training stops", why)
        # the record stops training after this epoch and still tests the best checkpoint
        RunRecord.of(trainer).set_status("pruned", why, **{PRUNED_AT: epoch})
