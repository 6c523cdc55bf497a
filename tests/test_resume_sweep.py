"""A sweep killed in the middle of a member resumes that member from its own last.ckpt and skips finished ones."""

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import QUIET, run_cli
from tests.killable import kill_when_paused, start_train


@pytest.mark.slow
def test_resumed_sweep_continues_the_killed_member_and_skips_the_finished_one(cifar_fixture, tmp_path):
    sweep, marker = tmp_path / "sweep", tmp_path / "paused"
    args = [
        "-m", *cifar_fixture, *QUIET, "data.train_subset=64", "trainer.max_epochs=2", "logger=csv",
        "+callbacks.pause._target_=tests.killable.PauseAt", f"+callbacks.pause.marker={marker}",
        "+callbacks.pause.batch=0", "+callbacks.pause.epoch=99,1",  # member 1 stops in its second epoch
        f"hydra.sweep.dir={sweep}",
    ]
    kill_when_paused(start_train(args, tmp_path / "sweep.log"), marker, tmp_path / "sweep.log")
    assert json.loads((sweep / "0" / "metrics.json").read_text())["status"] == "ok"
    assert not (sweep / "1" / "metrics.json").exists()
    finished_at = (sweep / "0" / "metrics.json").stat().st_mtime_ns
    finished_files = _hashes(sweep / "0")

    result = run_cli(["train.py", *args, "ckpt_path=last"])
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"{sweep / '0'} already finished (ok); not training it again" in output
    assert f"Restoring states from the checkpoint path at {sweep / '1' / 'checkpoints' / 'last.ckpt'}" in output
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == finished_at
    assert _hashes(sweep / "0") == finished_files  # its .hydra/ (no ckpt_path=last added), metrics, checkpoints
    record = json.loads((sweep / "1" / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert [row["epoch"] for row in record["history"]] == [0, 1]


def _hashes(run: Path) -> dict[str, str]:
    """A finished run's record, config and checkpoints: what resuming its sweep must leave byte for byte."""
    files = [*run.glob(".hydra/*"), run / "metrics.json", *run.glob("checkpoints/*")]
    return {str(f.relative_to(run)): hashlib.md5(f.read_bytes()).hexdigest() for f in files}
