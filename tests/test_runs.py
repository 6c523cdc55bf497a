"""runs.RunFolder / runs.Sweep: the one reader of run folders (job order, crashed jobs, what a sweep varied)."""

import json

import pytest
from omegaconf import OmegaConf

from dllabs.errors import ConfigError
from dllabs.reporting.hparams import folder_row
from dllabs.runs import RunFolder, Sweep


def _job(sweep_dir, number, lr, record=None):
    """A job folder as Hydra and train.py leave it (``record`` None: crashed before writing metrics.json)."""
    job = sweep_dir / str(number)
    (job / ".hydra").mkdir(parents=True)
    config = {"optimizer": {"lr": lr}, "task_name": "t", "paths": {"output_dir": "${hydra:runtime.output_dir}"}}
    OmegaConf.save(OmegaConf.create(config), job / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create([f"optimizer.lr={lr}", "regularizer=l1"]), job / ".hydra" / "overrides.yaml")
    hydra = {"hydra": {"runtime": {"choices": {"optimizer": "sgd", "regularizer": "l1", "experiment": None}}}}
    OmegaConf.save(OmegaConf.create(hydra), job / ".hydra" / "hydra.yaml")
    if record is not None:
        (job / "metrics.json").write_text(json.dumps(record))
    return job


def test_sweep_reads_jobs_in_job_order_and_a_crashed_job_as_failed(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    sweep = {"hydra": {"overrides": {"task": ["optimizer.lr=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,1.1,1.2",
                                              "regularizer=l1", "data.data_dir=/x"]}}}
    OmegaConf.save(OmegaConf.create(sweep), sweep_dir / "multirun.yaml")
    done = {"status": "ok", "optimized_metric": "val/acc", "best_score": 0.5, "epochs_completed": 3,
            "metrics": {"val/acc": 0.5, "train/loss": 1.0}}
    for number in range(12):
        _job(sweep_dir, number, round(0.1 * (number + 1), 1), None if number == 10 else done)

    runs = Sweep(sweep_dir)
    assert [run.job_number for run in runs] == list(range(12))  # 10 after 9, not after 1
    crashed = runs.runs[10]
    assert crashed.status == "failed" and "no metrics.json" in crashed.error and crashed.record == {}
    assert runs.settings()[0] == "optimizer.lr=0.1"

    row = folder_row(runs.runs[0])
    assert row.hparams == {"optimizer.lr": 0.1, "experiment": "none", "optimizer": "sgd", "regularizer": "l1",
                           "status": "ok"}
    assert row.metrics == {"best/val/acc": 0.5, "final/val/acc": 0.5, "epochs": 3.0}
    assert folder_row(crashed).hparams["status"] == "failed"


def test_run_folder_checkpoints_and_a_folder_that_is_not_a_run(tmp_path):
    job = _job(tmp_path, 0, 0.1, {"status": "ok"})
    with pytest.raises(ConfigError, match="no checkpoint"):
        RunFolder(job).best_checkpoint()
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert RunFolder(job).best_checkpoint() == RunFolder(job).last_checkpoint == job / "checkpoints" / "last.ckpt"
    (job / "checkpoints" / "best-epoch002.ckpt").write_bytes(b"x")
    assert RunFolder(job).best_checkpoint().name == "best-epoch002.ckpt"
    assert Sweep(job).runs == [RunFolder(job)]  # a run folder is a sweep of one
    with pytest.raises(ConfigError, match="no run folders"):
        Sweep(tmp_path / "0" / "checkpoints")
