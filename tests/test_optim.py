"""Schedules and regularisers."""

import itertools
import math

import pytest
import torch
from torch import nn

from dllabs import schedules
from dllabs.errors import ConfigError
from dllabs.regularizers import L1, L2
from dllabs.signature_check import check_arguments


def _lrs(factory, steps, **kwargs):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = factory(opt, total_steps=steps, steps_per_epoch=10, **kwargs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_is_linear_then_constant():
    lrs = _lrs(schedules.constant, 20, warmup_steps=4)
    assert lrs[:5] == [0.0, 0.25, 0.5, 0.75, 1.0] and set(lrs[5:]) == {1.0}


def test_step_halves_every_five_epochs():
    lrs = _lrs(schedules.step, 120, step_epochs=5, gamma=0.5)
    assert lrs[49] == 1.0 and lrs[50] == 0.5 and lrs[100] == 0.25


def test_multistep_at_half_and_three_quarters():
    lrs = _lrs(schedules.multistep, 200, milestones=[0.5, 0.75], gamma=0.1)
    assert lrs[99] == 1.0 and math.isclose(lrs[100], 0.1) and math.isclose(lrs[150], 0.01)
    with pytest.raises(ConfigError, match="scheduler.milestones=\\[5\\]: every item must be > 0 and < 1"):
        check_arguments({"milestones": [5]}, "dllabs.schedules.multistep", "scheduler")


def test_cosine_and_linear_end_near_zero():
    cos = _lrs(schedules.cosine, 100)
    lin = _lrs(schedules.linear, 100, warmup_steps=10)
    assert cos[0] == 1.0 and cos[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(cos))
    assert lin[10] == 1.0 and math.isclose(lin[55], 0.5) and lin[-1] < 0.02


def test_onecycle_peaks_at_the_configured_rate():
    lrs = _lrs(schedules.onecycle, 100)
    assert max(lrs) == pytest.approx(1.0) and lrs[0] < 0.1 and lrs[-1] < 1e-3


def test_penalties_cover_non_bias_weights_only():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 1))
    for p in net.parameters():
        nn.init.constant_(p, 2.0)
    weights = 2 * 9 + 2  # conv kernel + linear matrix; biases and BN affine excluded
    assert L1(0.1)(net).item() == pytest.approx(0.1 * 2.0 * weights)
    assert L2(0.1)(net).item() == pytest.approx(0.5 * 0.1 * 4.0 * weights)


def test_l2_gradient_equals_coupled_weight_decay():
    w = nn.Parameter(torch.randn(3, 3))
    L2(1e-2)(nn.ParameterList([w])).backward()
    assert torch.allclose(w.grad, 1e-2 * w.detach())
