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
         "--loader-batches", "2", "--repeats", "2", "--variant-steps", "1", "--variant-rounds", "2",
         "--variant-warmup", "1", "--variant-batch", "8", "--no-compile", "--out", str(out)],
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
    # the precision rows: fp32 / channels_last / bf16-mixed taking turns, FLOPs from the layer table, % of peak
    variants = json.loads(out.read_text())["variants"]["simplenn"]
    assert list(variants["variants"]) == ["fp32", "fp32 + channels_last", "bf16-mixed", "bf16-mixed + channels_last"]
    assert variants["training_flops_per_image"] == 6 * bench_cifar.forward_macs("simplenn") == 6 * 716_328
    for entry in variants["variants"].values():
        assert len(entry["runs"]) == 2 and entry["images_per_s"] == pytest.approx(sum(entry["runs"]) / 2)
        assert entry["achieved_flops"] == pytest.approx(entry["images_per_s"] * variants["training_flops_per_image"])
        if "peak" in variants:
            assert entry["of_peak"] == pytest.approx(entry["achieved_flops"] / entry["peak_flops"])
            assert entry["peak_flops"] == variants["peak"][f"{entry['peak_kind']}_flops"]
    assert "bf16-mixed + channels_last" in result.stdout


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


def test_share_of_peak_arithmetic():
    """ResNet-20: 40.55M forward MACs -> 243.3 MFLOP per training image; 1,000 images/s on a 10.65 TFLOP/s peak."""
    flops = bench_cifar.training_flops_per_image(bench_cifar.forward_macs("resnet20"))
    assert flops == 6 * 40_551_040
    assert bench_cifar.of_peak(1_000.0, flops, 10_649.6e9) == pytest.approx(0.022846, rel=1e-4)
