"""The project's Conv2d/Linear behave exactly like torch's, and SimpleNN-3 is built from them."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from dllabs.errors import ConfigError
from dllabs.nets import layers
from dllabs.nets.simplenn3 import SimpleNN3


def _random_conv_args(rng: random.Random) -> dict:
    groups = rng.choice([1, 1, 2, 3])
    stride = rng.choice([1, 2, (1, 2), (2, 1)])
    kernel = rng.choice([1, 3, 5, (3, 1), (2, 4)])
    padding = rng.choice([0, 1, 2, (1, 0), "valid"] + (["same"] if stride == 1 else []))
    return {
        "in_channels": groups * rng.randint(1, 3),
        "out_channels": groups * rng.randint(1, 4),
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": rng.choice([1, 1, 2]),
        "groups": groups,
        "bias": rng.choice([True, False]),
        "padding_mode": rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]),
    }


def _pair_of(builtin_cls, custom_cls, **kwargs):
    """Built-in and custom layer from the same seed (float64 for tight comparisons)."""
    torch.manual_seed(7)
    builtin = builtin_cls(**kwargs, dtype=torch.float64)
    torch.manual_seed(7)
    custom = custom_cls(**kwargs, dtype=torch.float64)
    return builtin, custom


def _outputs_and_grads(layer: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * upstream).sum().backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("case", range(24))
def test_conv2d_matches_builtin(case: int) -> None:
    rng = random.Random(case)
    kwargs = _random_conv_args(rng)
    builtin, custom = _pair_of(nn.Conv2d, layers.Conv2d, **kwargs)
    for name, param in builtin.named_parameters():  # same init from the same seed
        assert torch.equal(param, dict(custom.named_parameters())[name]), (kwargs, name)
    x = torch.randn(2, kwargs["in_channels"], rng.randint(9, 13), rng.randint(9, 13), dtype=torch.float64)
    expected = builtin(x)
    upstream = torch.randn_like(expected)
    ref_out, ref_dx, ref_grads = _outputs_and_grads(builtin, x, upstream)
    out, dx, grads = _outputs_and_grads(custom, x, upstream)
    assert out.shape == ref_out.shape
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(dx, ref_dx)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name])
    assert repr(custom) == repr(builtin)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    ("padding", "kernel_size", "dilation"),
    [((1, 2), (3, 3), 1), ((2, 0), (3, 1), 1), ("same", (2, 4), (1, 2)), ("same", 3, 2), ("valid", 3, 1)],
)
def test_conv2d_padding_variants_match_builtin(padding, kernel_size, dilation, padding_mode: str) -> None:
    kwargs = {
        "in_channels": 2,
        "out_channels": 3,
        "kernel_size": kernel_size,
        "padding": padding,
        "dilation": dilation,
        "padding_mode": padding_mode,
    }
    builtin, custom = _pair_of(nn.Conv2d, layers.Conv2d, **kwargs)
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64)
    upstream = torch.randn_like(builtin(x))
    ref = _outputs_and_grads(builtin, x, upstream)
    got = _outputs_and_grads(custom, x, upstream)
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1])
    torch.testing.assert_close(got[2]["weight"], ref[2]["weight"])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (7,)])
def test_linear_matches_builtin(bias: bool, shape: tuple[int, ...]) -> None:
    builtin, custom = _pair_of(nn.Linear, layers.Linear, in_features=7, out_features=4, bias=bias)
    for name, param in builtin.named_parameters():
        assert torch.equal(param, dict(custom.named_parameters())[name])
    x = torch.randn(shape, dtype=torch.float64)
    upstream = torch.randn(*shape[:-1], 4, dtype=torch.float64)
    ref = _outputs_and_grads(builtin, x, upstream)
    got = _outputs_and_grads(custom, x, upstream)
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1])
    for name in ref[2]:
        torch.testing.assert_close(got[2][name], ref[2][name])
    assert repr(custom) == repr(builtin)


def test_init_distribution_and_reset_parameters_follow_the_builtin() -> None:
    torch.manual_seed(0)
    conv = layers.Conv2d(16, 32, 3)
    bound = 1 / (16 * 9) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert conv.bias.abs().max() <= bound
    before = conv.weight.detach().clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.weight)


@pytest.mark.parametrize("bias", [True, False])
def test_state_dicts_interchange_with_builtins(bias: bool) -> None:
    pairs = [
        (nn.Conv2d(3, 6, 3, padding=1, bias=bias), layers.Conv2d(3, 6, 3, padding=1, bias=bias)),
        (nn.Linear(6, 2, bias=bias), layers.Linear(6, 2, bias=bias)),
    ]
    for builtin, custom in pairs:
        assert builtin.state_dict().keys() == custom.state_dict().keys()
        custom.load_state_dict(builtin.state_dict(), strict=True)
        x = torch.randn(2, 3, 5, 5) if isinstance(builtin, nn.Conv2d) else torch.randn(2, 6)
        torch.testing.assert_close(custom(x), builtin(x))
        torch.nn.init.normal_(custom.weight)
        builtin.load_state_dict(custom.state_dict(), strict=True)
        torch.testing.assert_close(builtin(x), custom(x))


def test_layers_record_last_input_and_output_without_holding_the_graph() -> None:
    conv, linear = layers.Conv2d(3, 4, 3), layers.Linear(4, 2)
    assert conv.last_input is None and linear.last_output is None
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    out = conv(x)
    assert torch.equal(conv.last_input, x.detach()) and torch.equal(conv.last_output, out.detach())
    assert conv.last_output.grad_fn is None and not conv.last_input.requires_grad
    y = torch.randn(5, 4)
    linear(y)
    second = torch.randn(3, 4)
    linear(second)
    assert torch.equal(linear.last_input, second)
    assert linear.last_output.shape == (3, 2)
    linear.record = False
    linear(y)
    assert torch.equal(linear.last_input, second)
    assert "last_input" not in linear.state_dict()


def test_invalid_arguments_are_rejected_like_the_builtin() -> None:
    with pytest.raises(ValueError, match="divisible"):
        layers.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        layers.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        layers.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding string"):
        layers.Conv2d(3, 4, 3, padding="full")


def test_simplenn3_shapes_and_builtin_twin() -> None:
    torch.manual_seed(3)
    net = SimpleNN3()
    assert all(isinstance(getattr(net, n), layers.Conv2d) for n in ("conv1", "conv2", "conv3"))
    assert net.conv1.bias is None and net.fc1.bias is not None
    x = torch.randn(2, 3, 32, 32)
    logits = net(x)
    assert logits.shape == (2, 10)
    assert net.conv3.last_output.shape == (2, 32, 6, 6)
    assert net.fc1.last_input.shape == (2, 288)
    twin = SimpleNN3(builtin_layers=True)
    assert isinstance(twin.conv1, nn.Conv2d)
    twin.load_state_dict(net.state_dict(), strict=True)
    torch.testing.assert_close(twin(x), logits)
    assert (SimpleNN3(relu_on_logits=True)(x) >= 0).all()


def test_simplenn3_rejects_too_small_inputs() -> None:
    with pytest.raises(ConfigError, match="too small"):
        SimpleNN3(input_size=8)
    assert SimpleNN3(input_size=64)(torch.randn(1, 3, 64, 64)).shape == (1, 10)
