"""ResNet for CIFAR (He et al. 2016, sec. 4.2): sizes, cost, shortcuts and config errors."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dllabs.errors import ConfigError
from dllabs.nets.resnet import ResNet, ZeroPadShortcut
from dllabs.signature_check import check_arguments


def count_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_macs(net: torch.nn.Module) -> float:
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() / 2


@pytest.mark.parametrize(
    ("depth", "shortcut", "params"),
    [(20, "A", 269_722), (20, "B", 272_474), (32, "A", 464_154), (44, "A", 658_586), (56, "A", 853_018)],
)
def test_parameter_counts(depth, shortcut, params):
    assert count_params(ResNet(depth=depth, shortcut=shortcut)) == params


def test_resnet20_macs_option_a():
    macs = count_macs(ResNet(depth=20, shortcut="A").eval())
    assert macs == pytest.approx(40.6e6, rel=0.005)


def test_output_shape_and_layer_count():
    net = ResNet(depth=20)
    assert net(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    weighted = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weighted) == 20
    assert [len(stage) for stage in (net.stage1, net.stage2, net.stage3)] == [3, 3, 3]


def test_option_b_projects_only_where_shape_changes():
    net = ResNet(depth=20, shortcut="B")
    projections = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [(p.in_channels, p.out_channels, p.stride) for p in projections] == [
        (16, 32, (2, 2)),
        (32, 64, (2, 2)),
    ]


def test_option_a_shortcut_is_subsampled_identity_with_zero_channels():
    x = torch.randn(2, 16, 32, 32)
    y = ZeroPadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_gradients_reach_the_first_layer():
    net = ResNet(depth=8)
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert net.conv1.weight.grad is not None and net.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [{"depth": 21}, {"depth": 2}, {"shortcut": "C"}])
def test_bad_config_is_a_clear_error(kwargs):
    """Declared on ResNet's signature and checked before launch (the constructor does not check it again)."""
    with pytest.raises(ConfigError, match="model.net"):
        check_arguments(kwargs, "dllabs.nets.resnet.ResNet", "model.net")
