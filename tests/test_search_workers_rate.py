"""scripts/search_workers_rate.py, the README's command for trials per hour with 1 and 2 workers, run as a user
runs it (a real process, real workers on real SQLite studies), in a window short enough for a test."""

from __future__ import annotations

import json

import optuna
import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_one_and_two_workers_each_finish_trials_of_their_own_study(tmp_path):
    out = tmp_path / "rate"
    result = run_cli(
        ["scripts/search_workers_rate.py", "--workers", "1", "2", "--minutes", "0.25", "--out", str(out), "--",
         "experiment=lms", "optimizer.lr=tag(log, interval(1e-3, 0.05))", "trainer.max_epochs=2"],
        fresh=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trials finished per hour" in result.stdout
    saved = json.loads((out / "result.json").read_text())  # what the results ledger shows
    assert list(saved) == ["1 worker", "2 workers"]
    one, two = saved.values()
    assert one["finished"] > 0 and two["finished"] > 0
    assert one["speed_up"] == 1.0
    assert two["speed_up"] == pytest.approx(two["per_hour"] / one["per_hour"])
    # each count had a study of its own in its folder, and every trial counted there is a finished one
    for workers, row in zip((1, 2), saved.values()):
        (folder,) = out.glob(f"{workers}_workers_*")
        study = optuna.load_study(study_name="rate", storage=f"sqlite:///{folder}/studies.db")
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        assert len(finished) >= row["finished"]
