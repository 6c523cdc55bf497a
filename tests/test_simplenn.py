import json

import torch

from dllabs.nets.simplenn import SimpleNN
from tests.conftest import run_train


def test_parameter_count_is_the_labs():
    assert sum(p.numel() for p in SimpleNN().parameters()) == 82_030


def test_batchnorm_and_swish_variants_keep_shapes():
    net = SimpleNN(norm="batchnorm", activation="swish")
    assert net(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.linspace(-3, 3, 7)
    swish = net.classifier[2]
    assert torch.allclose(swish(x), x * torch.sigmoid(x))


def test_simplenn_learns_the_fixture(cifar_fixture, tmp_path):
    metric, _ = run_train(
        [*cifar_fixture, "trainer.max_epochs=6", "optimizer.lr=0.01", "data.batch_size=16"],
        tmp_path,
    )
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert metric > 0.6, f"val accuracy {metric} not well above chance (0.1)"
    assert record["metrics"]["test/acc"] > 0.5
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "curves.png").exists()
