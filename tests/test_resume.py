"""A run stopped after epoch 1 and resumed from last.ckpt ends with exactly the uninterrupted run's weights."""

import torch

from tests.conftest import interrupt_after, run_train

SETTINGS = ["data.augment=crop_flip", "scheduler=cosine", "optimizer.lr=0.02", "data.train_subset=96"]


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_resume_continues_exactly(cifar_fixture, tmp_path):
    run_train([*cifar_fixture, *SETTINGS, "trainer.max_epochs=2"], tmp_path / "straight")
    run_train([*cifar_fixture, *SETTINGS, "trainer.max_epochs=2", *interrupt_after(0)], tmp_path / "first_half")
    resumed_from = tmp_path / "first_half" / "checkpoints" / "last.ckpt"
    run_train([*cifar_fixture, *SETTINGS, "trainer.max_epochs=2", f"ckpt_path={resumed_from}"], tmp_path / "resumed")

    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert straight["epoch"] == resumed["epoch"] == 1
    assert straight["global_step"] == resumed["global_step"]
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), f"{key} differs after resume"
    first = _weights(tmp_path / "first_half")["state_dict"]
    assert any(not torch.equal(first[k], straight["state_dict"][k]) for k in first), "epoch 2 changed nothing"


def test_ckpt_path_last_finds_this_run_folder(cifar_fixture, tmp_path):
    run_dir = tmp_path / "run"
    run_train([*cifar_fixture, "trainer.max_epochs=1", "data.train_subset=64"], run_dir)
    (run_dir / "metrics.json").unlink()
    run_train([*cifar_fixture, "trainer.max_epochs=2", "data.train_subset=64", "ckpt_path=last"], run_dir)
    assert _weights(run_dir)["epoch"] == 1


def test_checkpoints_hold_only_plain_data(cifar_fixture, tmp_path):
    run_train([*cifar_fixture, "trainer.max_epochs=1", "data.train_subset=64"], tmp_path)
    checkpoint = _weights(tmp_path)
    assert checkpoint["hyper_parameters"] == {"num_classes": 10, "label_smoothing": 0.0, "tta_flip": False}
