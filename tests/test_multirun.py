"""A sweep from the command line: one run folder per setting, a diverging setting recorded, a report of both."""

import json

import pytest

from dllabs.reporting.multirun import report
from tests.conftest import QUIET, run_cli


@pytest.mark.slow
def test_two_setting_sweep_with_a_diverging_run(cifar_fixture, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "train.py", "-m", *cifar_fixture, *QUIET,
            "data.train_subset=64", "trainer.max_epochs=2",
            "optimizer.lr=0.01,1e6",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1"]
    statuses = [json.loads((p / "metrics.json").read_text())["status"] for p in runs]
    assert statuses == ["ok", "diverged"]
    diverged = json.loads((runs[1] / "metrics.json").read_text())
    assert "loss became" in diverged["error"]

    table, rows = report(sweep_dir)
    assert [row["setting"] for row in rows] == ["optimizer.lr=0.01", "optimizer.lr=1000000.0"]
    assert [row["status"] for row in rows] == ["ok", "diverged"]
    assert "optimizer.lr=1000000.0" in table
    assert (sweep_dir / "report_curves.png").stat().st_size > 0

    printed = run_cli(["scripts/report.py", str(sweep_dir)])
    assert printed.returncode == 0, printed.stderr
    assert "diverged" in printed.stdout and "optimizer.lr=0.01" in printed.stdout


def test_report_of_a_folder_without_runs_is_a_clear_error(tmp_path):
    result = run_cli(["scripts/report.py", str(tmp_path)])
    assert result.returncode == 2
    assert "no run folders" in result.stderr
