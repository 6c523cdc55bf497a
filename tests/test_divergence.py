"""A run that learned nothing is recorded as diverged: non-finite loss, or accuracy still at chance level."""

from __future__ import annotations

import json
import math

from tests.conftest import TWO_BATCHES, run_train


def _record(tmp_path, cifar_fixture, *overrides):
    value, _ = run_train([*cifar_fixture, *TWO_BATCHES, *overrides], tmp_path)
    return value, json.loads((tmp_path / "metrics.json").read_text())


def test_accuracy_at_chance_after_stuck_epochs_stops_the_run_as_diverged(tmp_path, cifar_fixture):
    # a margin of 1.0 puts every accuracy "at chance": the guard must stop the run after its first epoch
    value, record = _record(
        tmp_path, cifar_fixture,
        "callbacks.divergence_guard.stuck_epochs=1", "callbacks.divergence_guard.stuck_margin=1.0",
    )
    assert record["status"] == "diverged" and math.isnan(value)
    assert "at chance level (0.1000)" in record["error"] and "learned nothing" in record["error"]
    assert record["history"][-1]["epoch"] == 0 and "val/acc" in record["history"][-1]


def test_accuracy_above_chance_keeps_the_run(tmp_path, cifar_fixture):
    _, record = _record(
        tmp_path, cifar_fixture,
        "callbacks.divergence_guard.stuck_epochs=1", "callbacks.divergence_guard.stuck_margin=-1.0",
    )
    assert record["status"] == "ok"


def test_non_finite_loss_is_diverged(tmp_path, cifar_fixture):
    value, record = _record(tmp_path, cifar_fixture, "optimizer.lr=1e12")
    assert record["status"] == "diverged" and math.isnan(value)
    assert "loss became" in record["error"]
