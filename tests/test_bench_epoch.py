"""benchmarks/bench_epoch.py: a resnet20_fast epoch through train.py against a plain loop doing the same work."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_epoch

from dllabs import hardware


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("resnet20_fast_cpu", {"batch": 256, "eval_batch": 500, "channels_last": True, "ema_decay": 0.998}),
        ("resnet20_fast", {"batch": 256, "eval_batch": 500, "precision": "32-true", "channels_last": False,
                           "ema_decay": 0.999}),
    ],
)
def test_the_plain_loop_takes_the_experiments_settings(experiment, expected):
    settings = bench_epoch.experiment_settings(experiment)
    assert {key: settings[key] for key in expected} == expected
    assert settings["sgd"] == {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    assert settings["label_smoothing"] == 0.1
    if experiment == "resnet20_fast_cpu":  # cpu_precision=auto: what this CPU's detection gives
        assert settings["precision"] == hardware.cpu_precision("auto", "cpu")


def test_command_line_times_both_epochs(tmp_path):
    out = tmp_path / "epoch.json"
    result = run_cli(
        ["benchmarks/bench_epoch.py", "--quick", "--experiments", "resnet20_fast_cpu", "--train-images", "64",
         "--val-images", "36", "--out", str(out)],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["measurement"]: r for r in json.loads(out.read_text())["rows"]}
    plain = rows["resnet20_fast_cpu epoch: plain loop (EMA, flip-TTA val, logging, checkpoint)"]
    framework = rows["resnet20_fast_cpu epoch: framework (train.py, every callback)"]
    assert framework["baseline"] == plain["measurement"]
    assert framework["ratio"] == pytest.approx(plain["value"] / framework["value"])
    for timed in (plain, framework):
        assert 0 < timed["train_s"] and 0 < timed["val_s"] and timed["train_s"] + timed["val_s"] <= timed["value"]
    projected = rows["resnet20_fast_cpu: projected full epoch in the framework"]
    assert projected["value"] == pytest.approx(
        (framework["train_s"] / 64 * 45_000 + framework["val_s"] / 36 * 5_000) / 60)
