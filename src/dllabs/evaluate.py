"""``eval.py``: rebuild a finished run from its own config and evaluate its best checkpoint."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from dllabs.config_schema import validate_config
from dllabs.errors import ConfigError
from dllabs.records import plain_metrics, write_json_atomic
from dllabs.runs import restore_run


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the run in ``cfg.run_dir`` from its own config and evaluate its best checkpoint."""
    validate_config(cfg)
    if not cfg.get("run_dir"):
        raise ConfigError("eval.py needs run_dir=<a run folder made by train.py>")
    run = restore_run(cfg.run_dir, list(cfg.get("run_overrides") or []), cfg.get("ckpt"))
    datamodule, task, ckpt = run.datamodule, run.task, run.checkpoint
    trainer = L.Trainer(
        accelerator=cfg.get("accelerator", "auto"), devices=1, logger=False, enable_progress_bar=False,
        default_root_dir=cfg.paths.output_dir,
    )
    stage = trainer.validate if cfg.split == "val" else trainer.test
    results = stage(task, datamodule=datamodule, verbose=True)
    metrics = plain_metrics(results[0] if results else {})
    write_json_atomic(
        Path(cfg.paths.output_dir) / "eval_metrics.json",
        {"run_dir": str(cfg.run_dir), "checkpoint": str(ckpt), "split": cfg.split, "metrics": metrics},
    )
    return metrics
