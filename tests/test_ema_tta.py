"""Weight averaging (callbacks=ema) and flip test-time augmentation (model.tta_flip), as experiment=resnet20_fast
uses them: what is validated, checkpointed and tested is the averaged net; evaluation logits are the mean over
each image and its mirror."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dllabs.errors import ConfigError
from dllabs.runs import instantiate_task
from dllabs.tasks.classification import ClassificationTask
from tests.conftest import TWO_BATCHES, run_train


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


class LeftHalf(nn.Module):
    """A net that only looks at the left half of an image, so an image and its mirror get different logits."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 2, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images[..., :2].flatten(1))


def test_flip_tta_logits_are_the_mean_over_the_image_and_its_mirror_in_test():
    torch.manual_seed(0)
    images, labels = torch.randn(12, 3, 4, 4), torch.randint(0, 3, (12,))
    task = ClassificationTask(LeftHalf(), num_classes=3, optimizer=_sgd, tta_flip=True)
    plain = task(images)
    expected = (plain + task(images.flip(-1))) / 2
    assert not torch.allclose(plain, expected)
    assert torch.allclose(task.evaluation_logits(images), expected)

    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (result,) = trainer.test(task, DataLoader(TensorDataset(images, labels), batch_size=12), verbose=False)
    assert result["test/loss"] == pytest.approx(F.cross_entropy(expected, labels).item(), rel=1e-5)
    probabilities = trainer.predict(task, DataLoader(TensorDataset(images, labels), batch_size=12))[0]
    assert torch.allclose(probabilities, expected.softmax(-1), atol=1e-6)

    task.tta_flip = False
    (result,) = trainer.test(task, DataLoader(TensorDataset(images, labels), batch_size=12), verbose=False)
    assert result["test/loss"] == pytest.approx(F.cross_entropy(plain, labels).item(), rel=1e-5)


def test_flip_tta_on_token_batches_is_a_config_error():
    task = ClassificationTask(nn.Embedding(10, 2), num_classes=2, optimizer=_sgd, tta_flip=True)
    with pytest.raises(ConfigError, match="tta_flip needs image batches"):
        task.evaluation_logits(torch.tensor([[1, 2, 3]]))


def test_resnet20_fast_validates_checkpoints_and_tests_the_averaged_weights(cifar_fixture, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        "experiment=resnet20_fast",
        *cifar_fixture,
        *TWO_BATCHES,
        "trainer.limit_train_batches=3",
        "data.batch_size=16",
        "data.eval_batch_size=50",
        "callbacks.ema.decay=0.5",  # a short run: let the average move visibly
    ]
    _, cfg = run_train(overrides, run_dir)
    assert cfg.model.tta_flip and cfg.optimizer.nesterov and cfg.model.label_smoothing == 0.1
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok", record.get("error")
    checkpoint = torch.load(record["best_checkpoint"], map_location="cpu", weights_only=True)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert averaged.keys() == raw.keys()
    changed = [
        k for k in averaged if averaged[k].is_floating_point() and not torch.equal(averaged[k], raw[k])
    ]
    assert any(k.endswith("weight") for k in changed), "EMA weights equal the raw ones after 3 steps"

    # the recorded test loss is the averaged net's (with flip TTA), not the raw net's
    losses = {}
    for name, state in (("averaged", averaged), ("raw", raw)):
        task = instantiate_task(cfg)
        task.load_state_dict(state)
        trainer = L.Trainer(
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            limit_test_batches=2,
            enable_model_summary=False,
        )
        (result,) = trainer.test(task, datamodule=instantiate(cfg.data), verbose=False)
        losses[name] = result["test/loss"]
    assert record["metrics"]["test/loss"] == pytest.approx(losses["averaged"], rel=1e-5)
    assert losses["raw"] != pytest.approx(losses["averaged"], rel=1e-3)


def test_resnet20_fast_cpu_with_compile_trains_and_checkpoints_plain_parameter_names(cifar_fixture, tmp_path):
    """compile=true (as experiment=resnet20_fast_cpu may use it): EMA, flip TTA and bf16/fp32 autocast run through
    the compiled net, and the checkpoint loads into an uncompiled net."""
    run_dir = tmp_path / "run"
    overrides = [
        "experiment=resnet20_fast_cpu", "compile=true", *cifar_fixture, *TWO_BATCHES,
        "data.batch_size=16", "data.eval_batch_size=50", "callbacks.ema.decay=0.5",
    ]
    _, cfg = run_train(overrides, run_dir)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok", record.get("error")
    checkpoint = torch.load(record["best_checkpoint"], map_location="cpu", weights_only=True)
    assert not [k for k in checkpoint["state_dict"] if "_orig_mod" in k]
    task = instantiate_task(cfg)
    task.load_state_dict(checkpoint["state_dict"])
    assert checkpoint["state_dict"].keys() != checkpoint["current_model_state"].keys() or any(
        not torch.equal(v, checkpoint["current_model_state"][k])
        for k, v in checkpoint["state_dict"].items() if v.is_floating_point()
    ), "the averaged weights equal the raw ones"
