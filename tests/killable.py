"""Test-only pieces for killing a real ``python train.py`` at a point the test chooses, on fixture data.

``PauseAt`` is added to a run by a config override (:func:`pause_at`). When training reaches its point it writes
a marker file and blocks; the test waits for the marker and sends SIGKILL, so the kill lands exactly there (no
sleeps). ``DropoutSimpleNN`` is SimpleNN with dropout, so a resume must also continue the dropout masks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from torch import nn

from dllabs.nets.simplenn import SimpleNN

ROOT = Path(__file__).resolve().parents[1]


class DropoutSimpleNN(SimpleNN):
    """SimpleNN with dropout before each hidden fully-connected layer."""

    def __init__(self, num_classes: int = 10, norm: str = "none", activation: str = "relu", p: float = 0.3) -> None:
        super().__init__(num_classes, norm, activation)
        layers = list(self.classifier)
        self.classifier = nn.Sequential(layers[0], nn.Dropout(p), *layers[1:3], nn.Dropout(p), *layers[3:])


class PauseAt(Checkpoint):
    """Write ``marker`` and block at the start of batch ``batch`` of ``epoch``, or, with ``batch=None``, right after
    the checkpoints of ``epoch`` are written (at its train-epoch end).

    It pauses once: when ``marker`` exists already (a resumed run passing the same point again), it does nothing.
    It is a ``Checkpoint`` only so that Lightning orders it after the ModelCheckpoints, whose ``last.ckpt`` it then
    follows; it saves nothing.
    """

    def __init__(self, marker: str, epoch: int, batch: int | None = None) -> None:
        self.marker = Path(marker)
        self.epoch = epoch
        self.batch = batch

    def _pause(self) -> None:
        if self.marker.exists():
            return
        self.marker.write_text(str(os.getpid()))
        time.sleep(120)  # the test kills us long before; if it does not, the run fails its comparison
        raise RuntimeError("PauseAt: nobody killed this process")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batch is None and trainer.current_epoch == self.epoch:
            self._pause()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.batch is not None and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self._pause()


def pause_at(marker: Path, epoch: int, batch: int | None = None) -> list[str]:
    """Overrides that add :class:`PauseAt` to a run's callbacks."""
    return [
        "+callbacks.pause._target_=tests.killable.PauseAt",
        f"+callbacks.pause.marker={marker}",
        f"+callbacks.pause.epoch={epoch}",
        f"+callbacks.pause.batch={'null' if batch is None else batch}",
    ]


def start_train(args: list[str], log: Path) -> subprocess.Popen:
    """``python train.py ARGS`` in the background, output to ``log``."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)


def kill_when_paused(process: subprocess.Popen, marker: Path, log: Path, timeout: float = 240) -> None:
    """Wait until ``process`` writes ``marker`` (it is then blocked at its pause point) and SIGKILL it."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"train.py ended (exit {process.returncode}) before its pause point:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"train.py did not reach its pause point in {timeout} s")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
