"""Sweeps through the submitit launcher: each job its own process, one run folder per job; the SLURM config composes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import QUIET, compose_config, run_cli


@pytest.mark.slow
def test_submitit_local_sweep_of_two_jobs_yields_two_run_folders(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "train.py", "-m", "hydra/launcher=local", "hydra.launcher.timeout_min=5",
            "experiment=lms", *QUIET, "trainer.max_epochs=2", "optimizer.lr=0.005,0.01",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1"]
    records = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert [r["results"]["lr"] for r in records] == [0.005, 0.01]
    assert all(r["epochs_completed"] == 2 for r in records)
    job_logs = list((sweep_dir / ".submitit").glob("*/*_log.out"))
    assert len(job_logs) == 2, "each job ran as its own submitit process"


def test_slurm_launcher_config_has_cluster_settings_as_values(tmp_path):
    cfg = compose_config(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
         "hydra.launcher.timeout_min=600", "hydra.launcher.mem_gb=64"],
        tmp_path,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min, launcher.mem_gb) == ("gpu", 4, 600, 64)
    local = compose_config(["hydra/launcher=local"], tmp_path)
    assert local.hydra.launcher._target_.endswith("GpuSlotsLauncher")  # submitit's local one with GPU slots
    assert (local.hydra.launcher.gpus, local.hydra.launcher.jobs_per_gpu) == (None, 1)  # every GPU, one job each
