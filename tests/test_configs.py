"""Every shipped config composes, and every experiment trains two batches on generated data."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from tests.conftest import CONF_DIR, TWO_BATCHES, compose_config, run_train

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra",))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
# DDP re-launches the current command per rank (here: pytest), so those run as CLI subprocesses in test_ddp.py
NO_CPU_RUN = {("trainer", "gpu"), ("trainer", "ddp"), ("trainer", "ddp_spawn"), ("trainer", "ddp_cpu")}
RUN_ON_FIXTURE = {"optimizer", "scheduler", "regularizer", "logger", "callbacks", "debug", "trainer"}


def fixture_overrides(data_choice: str, root: Path) -> list[str]:
    """Generated data for the data config an experiment uses (tests/fixtures/<name>.py)."""
    module = importlib.import_module(f"tests.fixtures.{data_choice}")
    return module.make(root)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], tmp_path)
    assert cfg.hydra.runtime.choices[group] == option


@pytest.mark.parametrize(
    ("group", "option"),
    [o for o in OPTIONS if o[0] in RUN_ON_FIXTURE and o not in NO_CPU_RUN],
    ids=[f"{g}={o}" for g, o in OPTIONS if g in RUN_ON_FIXTURE and (g, o) not in NO_CPU_RUN],
)
def test_every_training_option_runs_two_batches(group, option, cifar_fixture, tmp_path):
    overrides = [*cifar_fixture, f"{group}={option}", *TWO_BATCHES, "data.train_subset=64"]
    if group == "debug":
        overrides = [*cifar_fixture, f"{group}={option}", "data.train_subset=64"]
    run_train(overrides, tmp_path)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "ok", record.get("error")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_two_batches(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}"], tmp_path / "probe")
    data_choice = cfg.hydra.runtime.choices["data"]
    overrides = fixture_overrides(data_choice, tmp_path / "data")
    run_train([f"experiment={experiment}", *overrides, *TWO_BATCHES], tmp_path / "run")
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] in ("ok", "diverged"), record.get("error")
    assert record["epochs_completed"] >= 1
