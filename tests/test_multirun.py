"""A sweep from the command line: one run folder per setting, a diverging setting recorded, a report of all,
and the same rows in TensorBoard's HParams tab, each run named by its swept value."""

import json
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from dllabs.reporting.multirun import report
from tests.conftest import QUIET, run_cli

SETTINGS = ["optimizer.lr=0.01", "optimizer.lr=0.05", "optimizer.lr=1000000.0"]


def _hparams_run(tensorboard_dir):
    """(run name, hparams, session end status, last value of each scalar) of the one run in ``tensorboard_dir``."""
    (run,) = [p for p in tensorboard_dir.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run))
    events.Reload()
    plugin = {tag: HParamsPluginData.FromString(content) for tag, content in events.PluginTagToContent("hparams").items()}
    start = plugin["_hparams_/session_start_info"].session_start_info
    hparams = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind")) for key, value in start.hparams.items()}
    end = plugin["_hparams_/session_end_info"].session_end_info.status
    scalars = {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
    return run.name, hparams, end, scalars


@pytest.mark.slow
def test_three_setting_sweep_with_a_diverging_run_in_report_and_tensorboard(cifar_fixture, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "train.py", "-m", *cifar_fixture, *QUIET,
            "data.train_subset=64", "trainer.max_epochs=2", "regularizer=l1",
            "optimizer.lr=0.01,0.05,1e6",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1", "2"]
    records = [json.loads((p / "metrics.json").read_text()) for p in runs]
    assert [r["status"] for r in records] == ["ok", "ok", "diverged"]
    assert "loss became" in records[2]["error"]

    table, rows = report(sweep_dir)
    assert [row["setting"] for row in rows] == SETTINGS
    assert [row["status"] for row in rows] == ["ok", "ok", "diverged"]
    assert [row["optimizer.lr"] for row in rows] == [0.01, 0.05, 1e6]
    assert "optimizer.lr=1000000.0" in table
    assert (sweep_dir / "report_curves.png").stat().st_size > 0

    # TensorBoard: every run named by its swept value, its HParams row = the report's row
    ok, failure = 1, 2  # the plugin's STATUS_SUCCESS, STATUS_FAILURE
    for run, row, record, setting in zip(runs, rows, records, SETTINGS):
        name, hparams, end, scalars = _hparams_run(run / "tensorboard")
        assert name == setting
        assert hparams["optimizer.lr"] == row["optimizer.lr"]
        assert hparams["status"] == record["status"] == row["status"]
        assert hparams["regularizer"] == "l1" and hparams["model"] == "simplenn" and hparams["data"] == "cifar10"
        assert "data.data_dir" not in hparams and "trainer.enable_model_summary" not in hparams
        assert end == (ok if record["status"] == "ok" else failure)
        assert scalars["epochs"] == record["epochs_completed"] == row["epochs"]
        best = scalars["best/val/acc"]
        if record["best_score"] is None:  # diverged before its first validation
            assert math.isnan(best) and math.isnan(row["best/val/acc"])
        else:
            assert best == pytest.approx(record["best_score"]) and best == pytest.approx(row["best/val/acc"])
        if record["status"] == "ok":
            assert scalars["final/test/acc"] == pytest.approx(record["metrics"]["test/acc"])
        else:
            assert "final/test/acc" not in scalars

    printed = run_cli(["scripts/report.py", str(sweep_dir)])
    assert printed.returncode == 0, printed.stderr
    assert "diverged" in printed.stdout and "optimizer.lr=0.01" in printed.stdout


def test_report_of_a_folder_without_runs_is_a_clear_error(tmp_path):
    result = run_cli(["scripts/report.py", str(tmp_path)])
    assert result.returncode == 2
    assert "no run folders" in result.stderr
