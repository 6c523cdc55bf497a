"""A training process killed with SIGKILL resumes exactly: the same final weights, best epoch and test score.

The kills land where the test chooses (tests/killable.py): right after the first ``last.ckpt`` is written,
and in the middle of a later epoch of the resumed run. Augmentation and dropout are on and the loaders use
worker processes, so data order, worker seeds and the global RNG must all continue exactly.
"""

import json

import pytest
import torch

from tests.conftest import run_train
from tests.killable import kill_when_paused, pause_at, start_train

SETTINGS = [
    "data.augment=crop_flip",
    "data.num_workers=2",
    "model.net._target_=tests.killable.DropoutSimpleNN",
    "optimizer.lr=0.05",
    "trainer.max_epochs=3",
    "optimized_metric=val/loss",  # "best" = highest validation loss: the first epoch, before both kills
    "monitor_mode=max",
    "logger=csv",
]
CONSOLE = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false"]


def _checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_run_killed_twice_ends_with_the_uninterrupted_weights(cifar_fixture, tmp_path):
    args = [*cifar_fixture, *SETTINGS, *CONSOLE]
    killed, resumed = tmp_path / "killed", tmp_path / "resumed"

    first = start_train([*args, *pause_at(tmp_path / "p1", epoch=0), f"hydra.run.dir={killed}"], tmp_path / "1.log")
    run_train([*cifar_fixture, *SETTINGS], tmp_path / "straight")  # meanwhile, in this process
    kill_when_paused(first, tmp_path / "p1", tmp_path / "1.log")
    assert _checkpoint(killed / "checkpoints" / "last.ckpt")["epoch"] == 0

    # resumed into a new run folder (as the README's ckpt_path=<old>/last.ckpt does), killed again mid-epoch 3
    second = start_train(
        [*args, f"ckpt_path={killed}/checkpoints/last.ckpt", *pause_at(tmp_path / "p2", epoch=2, batch=2),
         f"hydra.run.dir={resumed}"],
        tmp_path / "2.log",
    )
    kill_when_paused(second, tmp_path / "p2", tmp_path / "2.log")
    assert _checkpoint(resumed / "checkpoints" / "last.ckpt")["epoch"] == 1

    run_train([*cifar_fixture, *SETTINGS, "ckpt_path=last"], resumed)  # in this process: saves a start-up

    straight = _checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    final = _checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert final["epoch"] == straight["epoch"] == 2 and final["global_step"] == straight["global_step"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, final["state_dict"][key]), f"{key} differs after two kills and resumes"

    expected = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    record = json.loads((resumed / "metrics.json").read_text())
    assert expected["best_epoch"] == 0, "the setting must make a pre-kill epoch the best one"
    assert record["history"] == expected["history"]
    assert record["best_epoch"] == 0 and record["best_score"] == expected["best_score"]
    assert record["best_checkpoint"] == str(resumed / "checkpoints" / "best-epoch000.ckpt")
    assert record["metrics"]["test/acc"] == expected["metrics"]["test/acc"]
    assert record["metrics"]["test/loss"] == expected["metrics"]["test/loss"]
