"""benchmarks/bench_cifar.py: its command line writes the table and JSON (with the bare-LightningModule floor),
and the framework and the plain loop, taking turns step by step, are each charged their own time."""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager

import pytest
import torch

from tests.conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_cifar


def test_command_line_writes_table_and_json(tmp_path):
    out = tmp_path / "cifar.json"
    result = run_cli(
        ["benchmarks/bench_cifar.py", "--models", "simplenn", "--steps", "2", "--warmup", "1",
         "--loader-batches", "2", "--repeats", "2", "--out", str(out)],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "train simplenn: Lightning + ClassificationTask" in result.stdout
    training = json.loads(out.read_text())["training"]["simplenn"]
    assert len(training["framework_runs"]) == len(training["plain_runs"]) == 2
    ratios = [f / p for f, p in zip(training["framework_runs"], training["plain_runs"])]
    assert training["pair_ratios"] == pytest.approx(ratios)
    assert training["framework_over_plain"] == pytest.approx(sum(ratios) / 2)  # the median of two
    # the floor: a bare LightningModule taking turns with the plain loop in its own runs
    assert "train simplenn: bare LightningModule (floor)" in result.stdout
    floor = [f / p for f, p in zip(training["floor_runs"], training["floor_plain_runs"])]
    assert len(floor) == 2 and training["floor_pair_ratios"] == pytest.approx(floor)
    assert training["floor_over_plain"] == pytest.approx(sum(floor) / 2)


def test_taking_turns_charges_each_loop_its_own_time(monkeypatch):
    """A 40 ms sleep added to every plain step shows up in the plain loop's time only."""
    slow = 0.04

    @contextmanager
    def slow_autocast(precision, device):
        time.sleep(slow)
        yield

    monkeypatch.setattr(bench_cifar, "autocast", slow_autocast)  # only the plain step uses it
    torch.set_num_threads(1)
    args = argparse.Namespace(batch_size=32, warmup=1, steps=4, precision="32-true", channels_last=False)
    images, labels = bench_cifar.synthetic_cifar((args.warmup + args.steps + 1) * args.batch_size)
    loader = bench_cifar.DeviceLoader(
        images, labels, args.batch_size, True, True, bench_cifar.MEAN, bench_cifar.STD, torch.device("cpu"),
        0, True, False,
    )
    framework, plain = bench_cifar.interleaved("simplenn", loader, args, torch.device("cpu"))
    plain_step, framework_step = args.batch_size / plain, args.batch_size / framework
    assert plain_step > slow
    assert plain_step - framework_step > 0.6 * slow
