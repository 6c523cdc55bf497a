"""Lab-4 sweep presets (conf/sweep/robust_*.yaml): every job composes with the command its header documents,
and one job of each preset trains two batches on the fixture; one preset runs as a real multirun."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, TWO_BATCHES, compose_config, run_cli, run_train

PRESETS = sorted(p.stem for p in (CONF_DIR / "sweep").glob("robust_*.yaml"))
TWO_BATCHES_CSV = [*TWO_BATCHES, "logger=csv"]
EXPECTED_JOBS = {
    "robust_augment": 2,
    "robust_batchnorm": 4,
    "robust_activation": 2,
    "robust_lr": 6,
    "robust_l2": 5,
    "robust_l1_vs_l2": 2,
}


def documented_command(preset: str) -> list[str]:
    """The overrides of the ``python train.py -m ... sweep=<preset>`` line in the preset's header."""
    for line in (CONF_DIR / "sweep" / f"{preset}.yaml").read_text().splitlines():
        if line.startswith("#") and "train.py -m" in line and f"sweep={preset}" in line:
            words = shlex.split(line.lstrip("# ").split("train.py -m", 1)[1])
            return [w for w in words if not w.startswith("sweep=")]
    raise AssertionError(
        f"{preset}.yaml does not document its command (# python train.py -m ... sweep={preset})"
    )


def sweep_jobs(preset: str, tmp_path: Path) -> tuple[list[str], list[list[str]]]:
    """The base overrides and the override list of every job the basic sweeper would launch."""
    base = documented_command(preset)
    cfg = compose_config([*base, f"sweep={preset}"], tmp_path)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return base, [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_every_lab4_study_has_a_preset():
    assert set(PRESETS) == set(EXPECTED_JOBS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_composes(preset, tmp_path):
    base, jobs = sweep_jobs(preset, tmp_path / "probe")
    assert len(jobs) == EXPECTED_JOBS[preset]
    for job in jobs:
        cfg = compose_config([*base, *job], tmp_path / "job")
        for override in job:
            key, value = override.split("=", 1)
            if "." in key:
                assert str(OmegaConf.select(cfg, key)) == str(float(value) if "e-" in value else value)
            else:
                assert cfg.hydra.runtime.choices[key] == value


@pytest.mark.parametrize("preset", PRESETS)
def test_first_job_trains_two_batches(preset, cifar_fixture, tmp_path):
    base, jobs = sweep_jobs(preset, tmp_path / "probe")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_train([*base, *jobs[-1], *cifar_fixture, *TWO_BATCHES_CSV], tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] in ("ok", "diverged"), record.get("error")


@pytest.mark.slow
def test_l1_vs_l2_multirun_then_weight_figure(cifar_fixture, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "train.py",
            "-m",
            *documented_command("robust_l1_vs_l2"),
            "sweep=robust_l1_vs_l2",
            *cifar_fixture,
            *TWO_BATCHES_CSV,
            "callbacks.progress_bar=null",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    targets = [OmegaConf.load(run / ".hydra" / "config.yaml").regularizer._target_ for run in runs]
    assert targets == ["dllabs.regularizers.L1", "dllabs.regularizers.L2"]
    figure = run_cli(["scripts/compare_weights.py", *map(str, runs)], env={"OMP_NUM_THREADS": "1"})
    assert figure.returncode == 0, figure.stderr[-2000:]
    assert "L1 1e-04" in figure.stdout and (sweep_dir / "weight_distributions.png").exists()
