"""Checkpoint files survive a crash while being written, and a resume never trusts a truncated last.ckpt."""

import logging
import os

import pytest
import torch

from dllabs.checkpointing import AtomicCheckpointIO, resumable
from dllabs.errors import CheckpointMismatchError
from tests.conftest import run_train


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"epoch": 0, "state_dict": {"w": torch.zeros(1000)}}, target)

    def crash(_fd):
        raise OSError("killed while writing")

    monkeypatch.setattr(os, "fsync", crash)  # the new file is written but never finished
    with pytest.raises(OSError, match="killed while writing"):
        writer.save_checkpoint({"epoch": 1, "state_dict": {"w": torch.ones(1000)}}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt", "last.ckpt.partial"]


def test_unreadable_checkpoint_without_a_fallback_is_one_clear_error(tmp_path):
    broken = tmp_path / "last.ckpt"
    broken.write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(CheckpointMismatchError, match="cannot be read as a checkpoint"):
        resumable(broken)


def test_truncated_last_ckpt_resumes_from_the_newest_readable_one(cifar_fixture, tmp_path, caplog):
    settings = [*cifar_fixture, "data.train_subset=64"]
    run_train([*settings, "trainer.max_epochs=1"], tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    steps_per_epoch = torch.load(last, weights_only=True)["global_step"]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # what a crash during a plain write leaves
    (tmp_path / "metrics.json").unlink()

    with caplog.at_level(logging.WARNING, logger="dllabs"):
        run_train([*settings, "trainer.max_epochs=2", "ckpt_path=last"], tmp_path)
    fallback = tmp_path / "checkpoints" / "best-epoch000.ckpt"
    assert f"{last} cannot be read as a checkpoint (truncated?); resuming from {fallback}" in caplog.text
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * steps_per_epoch
