"""``train``: one training run as a plain function of a composed config (``train.py`` runs it under Hydra).

Validate, build, fit, test. The run's record (``metrics.json``, ``curves.png``, the HParams row) is written by one
of its callbacks, :class:`~dllabs.callbacks.run_record.RunRecord`, however the run ends.

torch and Lightning are imported inside the functions, not at the top: ``train.py`` imports this module before
the command line is checked, and a refused value must not wait for them (``make bench``'s start-up row measures
``import dllabs.cli``).
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

from dllabs.config_schema import validate_config
from dllabs.entry import CONF_DIR, run_mode
from dllabs.errors import TrainingDiverged
from dllabs.job_folder import finished_record
from dllabs.pairings import check_pairing

log = logging.getLogger("dllabs")


def train(cfg: DictConfig) -> float | None:
    """Train, test the best checkpoint; returns the best epoch's ``optimized_metric`` (for sweepers), NaN for a run
    that did not end ``ok``."""
    import lightning as L

    from dllabs.callbacks.run_record import RunRecord, best_model_path, optimized_value
    from dllabs.runs import load_task_weights

    check_pairing(CONF_DIR)  # a model that cannot take this data stops here, before any file is touched
    finished = _finished_record(cfg)
    if finished is not None:
        return optimized_value(finished)
    record = RunRecord.for_run(cfg)
    trainer = None
    try:
        validate_config(cfg)  # train.py checked its command line already; a sweep member's own values are recorded
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        task = build_task(cfg)
        trainer = _build_trainer(cfg, record)
        ckpt_path = _resume_path(cfg, task)
        if cfg.get("train", True):
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        elif ckpt_path:
            load_task_weights(task, ckpt_path)
        if cfg.get("test", True):  # the best checkpoint; the current weights when there is none
            trainer.test(task, datamodule=datamodule, ckpt_path=best_model_path(trainer), weights_only=True)
    except TrainingDiverged:
        pass  # recorded as diverged by the record; a sweep goes on
    except BaseException as err:
        record.end(trainer, err)  # also an error outside the Trainer's hooks (building, resuming)
        raise
    return optimized_value(record.end(trainer))


def build_task(cfg: DictConfig):
    """The task of ``cfg.model`` with its optimiser, scheduler and regulariser factories."""
    import torch

    from dllabs.runs import instantiate_task

    task = instantiate_task(cfg)
    if cfg.get("channels_last"):
        task.net = task.net.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        task.net.compile()  # in place: checkpoints keep the plain parameter names
    return task


def _build_trainer(cfg: DictConfig, record):
    """The Trainer of ``cfg.trainer`` with the configured callbacks and loggers, and ``record`` last of the
    callbacks (Lightning still runs its checkpoint callbacks after it), so it sees what the others report."""
    callbacks = [*_instantiate_each(cfg.get("callbacks")), record]
    loggers = _instantiate_each(cfg.get("logger"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       default_root_dir=cfg.paths.output_dir)


def _instantiate_each(node: DictConfig | None) -> list[Any]:
    if not node:
        return []
    return [instantiate(value) for value in node.values() if isinstance(value, DictConfig) and "_target_" in value]


def _finished_record(cfg: DictConfig) -> dict[str, Any] | None:
    """The record of this run folder when ``ckpt_path=last`` finds it already finished (then it is not trained
    again), else None. That it is this job's run was checked before the launch (:mod:`dllabs.job_folder`)."""
    if cfg.get("ckpt_path") != "last":
        return None
    previous = finished_record(cfg.paths.output_dir)
    if previous is not None:
        log.info("%s already finished (%s); not training it again", cfg.paths.output_dir, previous["status"])
    return previous


def _resume_path(cfg: DictConfig, task) -> str | None:
    """The checkpoint ``ckpt_path`` names (see :func:`dllabs.checkpointing.resume_path`), checked to fit ``task``."""
    from dllabs.checkpointing import requested_checkpoint
    from dllabs.runs import check_state_dict_fits, read_checkpoint

    path = requested_checkpoint(cfg, run_mode() == RunMode.MULTIRUN)
    if path:
        check_state_dict_fits(task, read_checkpoint(path)["state_dict"], path)
    return path
