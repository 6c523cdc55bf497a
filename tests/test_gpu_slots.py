"""hydra/launcher=local: one job per GPU (or M per GPU) at a time, each pinned to its own device, on faked GPUs."""

from __future__ import annotations

import json
import textwrap
from collections import Counter

import pytest
import torch

from hydra_plugins.dllabs_launcher.gpu_slots_launcher import gpu_slots
from tests.conftest import CONF_DIR, run_cli


def test_slots_share_out_the_gpus(monkeypatch):
    assert gpu_slots(3) == [(0,), (1,), (2,)]
    assert gpu_slots(2, jobs_per_gpu=2) == [(0,), (0,), (1,), (1,)]
    assert gpu_slots([1, 3], gpus_per_job=2) == [(1, 3)]
    assert gpu_slots(5, gpus_per_job=2) == [(0, 1), (2, 3)]  # the fifth GPU is left idle
    assert gpu_slots(0) == []
    with pytest.raises(ValueError, match="gpus_per_job=1"):
        gpu_slots(4, jobs_per_gpu=2, gpus_per_job=2)

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)  # a 4-GPU machine
    assert gpu_slots(None) == [(0,), (1,), (2,), (3,)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")  # this process was given two of them
    assert gpu_slots(None, jobs_per_gpu=2) == [(2,), (2,), (5,), (5,)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5d8e")
    with pytest.raises(ValueError, match="device indices"):
        gpu_slots(None)


APP = """
import json, os, time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base=None, config_path="conf", config_name="app")
def main(cfg):
    start = time.time()
    time.sleep(cfg.sleep)
    run = HydraConfig.get().runtime.output_dir
    record = {"num": HydraConfig.get().job.num, "cuda": os.environ["CUDA_VISIBLE_DEVICES"], "start": start,
              "end": time.time()}
    Path(run, "device.json").write_text(json.dumps(record))
    return float(cfg.x)


if __name__ == "__main__":
    main()
"""


def _app(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "conf" / "app.yaml").write_text(
        f"x: 0.0\nsleep: 1.5\nhydra:\n  searchpath: [file://{CONF_DIR}]\n  sweep:\n    dir: {tmp_path}/sweep\n"
    )
    return tmp_path / "app.py"


def _jobs(sweep_dir) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/device.json"))]


def _most_at_once(jobs: list[dict], key=lambda job: "all") -> dict:
    """The largest number of jobs running at one moment, per ``key``."""
    most: Counter = Counter()
    for job in jobs:
        at_start = [other for other in jobs if other["start"] <= job["start"] < other["end"]]
        for group, count in Counter(key(other) for other in at_start).items():
            most[group] = max(most[group], count)
    return dict(most)


@pytest.mark.slow
def test_grid_sweep_runs_one_job_per_gpu_slot(tmp_path):
    app = _app(tmp_path)
    result = run_cli(
        [str(app), "-m", "hydra/launcher=local", "hydra.launcher.gpus=2", "hydra.launcher.jobs_per_gpu=2",
         "x=0,1,2,3,4,5"],
        cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _jobs(tmp_path / "sweep")
    assert sorted(job["num"] for job in jobs) == list(range(6))
    assert {job["cuda"] for job in jobs} == {"0", "1"}, "each job is pinned to one of the two GPUs"
    assert _most_at_once(jobs)["all"] <= 4
    assert all(count <= 2 for count in _most_at_once(jobs, key=lambda job: job["cuda"]).values())


@pytest.mark.slow
def test_optuna_search_runs_one_trial_per_gpu(tmp_path):
    app = _app(tmp_path)
    result = run_cli(
        [str(app), "-m", "hydra/launcher=local", "hydra.launcher.gpus=[3,5]", "hydra/sweeper=optuna",
         "hydra.sweeper.study_name=gpus", "hydra.sweeper.direction=minimize", "hydra.sweeper.n_trials=4",
         "x=interval(0, 1)"],
        cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _jobs(tmp_path / "sweep")
    assert sorted(job["num"] for job in jobs) == [0, 1, 2, 3], "run folder N is trial N"
    assert {job["cuda"] for job in jobs} <= {"3", "5"}
    assert all(count == 1 for count in _most_at_once(jobs, key=lambda job: job["cuda"]).values())
    assert _most_at_once(jobs)["all"] == 2, "n_jobs defaults to the launcher's GPU slots"
