"""The run record (metrics.json, curves.png, the HParams row) is written by one callback on every way a run ends."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from dllabs.callbacks.run_record import RunRecord
from dllabs.errors import ConfigError
from tests.conftest import TWO_BATCHES, run_train

KEYS = ["status", "output_dir", "metrics", "optimized_metric", "best_epoch", "best_score", "best_checkpoint",
        "epochs_completed", "wall_time_s", "history"]


class FailAt(L.Callback):
    """Raise in ``on_train_epoch_end`` of ``epoch``: a callback that breaks part-way through a run."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"callback broke at epoch {self.epoch}")


class PruneAt(L.Callback):
    """What a search's pruning callback does: report ``pruned`` to the run's record after epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            RunRecord.of(trainer).set_status("pruned", f"pruned after epoch {self.epoch}", pruned_at_epoch=self.epoch)


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _hparams_status(run_dir) -> tuple[str, int]:
    """The status hyper-parameter and the session-end status of the run's HParams row."""
    (events_dir,) = [p for p in (run_dir / "tensorboard").iterdir() if p.is_dir()]
    events = EventAccumulator(str(events_dir))
    events.Reload()
    plugin = {tag: HParamsPluginData.FromString(content) for tag, content in events.PluginTagToContent("hparams").items()}
    status = plugin["_hparams_/session_start_info"].session_start_info.hparams["status"].string_value
    return status, plugin["_hparams_/session_end_info"].session_end_info.status


def test_ok_run_writes_its_record_curves_and_hparams_row(tmp_path, cifar_fixture):
    value, _ = run_train([*cifar_fixture, *TWO_BATCHES, "trainer.max_epochs=2"], tmp_path)
    record = _metrics(tmp_path)
    assert list(record)[: len(KEYS)] == KEYS and record["status"] == "ok" and "error" not in record
    assert record["epochs_completed"] == 2 and [row["epoch"] for row in record["history"]] == [0, 1]
    assert "test/acc" in record["metrics"] and "val/acc" in record["metrics"]
    assert value == record["best_score"] == record["history"][record["best_epoch"]]["val/acc"]
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert _hparams_status(tmp_path) == ("ok", 1)  # the plugin's STATUS_SUCCESS


def test_diverged_run_is_recorded_through_the_guard(tmp_path, cifar_fixture):
    value, _ = run_train([*cifar_fixture, *TWO_BATCHES, "optimizer.lr=1e12"], tmp_path)
    record = _metrics(tmp_path)
    assert math.isnan(value) and record["status"] == "diverged" and "loss became" in record["error"]
    stopped = record["stopped_at"]
    assert stopped["epoch"] == 0 and not math.isfinite(stopped["train/loss"])
    assert record["history"][-1]["epoch"] == 0 and "step" not in record["history"][-1]
    assert "test/acc" not in record["metrics"], "a diverged run is not tested"
    assert (tmp_path / "curves.png").exists()
    assert _hparams_status(tmp_path) == ("diverged", 2)  # STATUS_FAILURE


def test_exception_in_a_callback_is_recorded_as_failed_with_the_curves_so_far(tmp_path, cifar_fixture):
    broken = ["+callbacks.broken._target_=tests.test_run_record.FailAt", "+callbacks.broken.epoch=1"]
    with pytest.raises(RuntimeError, match="callback broke at epoch 1"):
        run_train([*cifar_fixture, *TWO_BATCHES, "trainer.max_epochs=3", *broken], tmp_path)
    record = _metrics(tmp_path)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: callback broke at epoch 1"
    assert [row["epoch"] for row in record["history"]] == [0, 1] and record["best_epoch"] in (0, 1)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert _hparams_status(tmp_path) == ("failed", 2)


def test_error_before_training_is_recorded_as_failed(tmp_path, cifar_fixture):
    with pytest.raises(ConfigError, match="does not exist"):
        run_train([*cifar_fixture, *TWO_BATCHES, f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path)
    record = _metrics(tmp_path)
    assert record["status"] == "failed" and record["error"].startswith("ConfigError: ckpt_path=")
    assert record["history"] == [] and record["epochs_completed"] == 0


def test_pruned_run_stops_tests_its_best_checkpoint_and_says_pruned(tmp_path, cifar_fixture):
    from dllabs.reporting.multirun import report

    pruning = ["+callbacks.pruner._target_=tests.test_run_record.PruneAt", "+callbacks.pruner.epoch=0"]
    value, _ = run_train([*cifar_fixture, *TWO_BATCHES, "trainer.max_epochs=3", *pruning], tmp_path)
    record = _metrics(tmp_path)
    assert math.isnan(value) and record["status"] == "pruned" and record["error"] == "pruned after epoch 0"
    assert record["pruned_at_epoch"] == 0 and record["epochs_completed"] == 1, "training stopped after epoch 0"
    assert "test/acc" in record["metrics"], "its best checkpoint is still tested"
    assert record["best_checkpoint"] and (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "curves.png").exists()
    assert _hparams_status(tmp_path) == ("pruned", 2)
    _, rows = report(tmp_path, tmp_path / "report")
    assert [row["status"] for row in rows] == ["pruned"]

    written = (tmp_path / "metrics.json").stat().st_mtime_ns
    again, _ = run_train([*cifar_fixture, *TWO_BATCHES, "trainer.max_epochs=3", "ckpt_path=last"], tmp_path)
    assert math.isnan(again) and (tmp_path / "metrics.json").stat().st_mtime_ns == written, "a pruned run is finished"


def test_set_status_refuses_unknown_statuses_and_the_record_s_own_keys(tmp_path):
    record = RunRecord(tmp_path)
    with pytest.raises(ValueError, match="not one of ok, diverged, failed, pruned"):
        record.set_status("stopped")
    with pytest.raises(ValueError, match="history"):
        record.set_status("pruned", history=[])
    with pytest.raises(LookupError, match="no RunRecord"):
        RunRecord.of(L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False))
