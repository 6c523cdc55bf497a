"""scripts/compare_weights.py: L1 vs L2 weight distributions of two run folders in one figure."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dllabs.errors import ConfigError
from dllabs.reporting.weights import compare_weights, penalized_weights
from scripts.compare_weights import main


def make_run(root: Path, name: str, penalty: str, weights: dict[str, torch.Tensor], score: float) -> Path:
    """A run folder as train.py leaves it: config, best checkpoint, metrics.json."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    cfg = {
        "paths": {"output_dir": str(run)},
        "regularizer": {"_target_": f"dllabs.regularizers.{penalty}", "strength": 1e-4},
        "optimizer": {"weight_decay": 0.0},
    }
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    state = {f"net.{k}": v for k, v in weights.items()}
    state["net.fc.bias"] = torch.ones(10)
    state["net.bn.running_mean"] = torch.zeros(4)
    torch.save({"state_dict": state, "epoch": 3}, run / "checkpoints" / "best-epoch003.ckpt")
    (run / "metrics.json").write_text(json.dumps({"best_score": score, "optimized_metric": "val/acc"}))
    return run


@pytest.fixture
def two_runs(tmp_path):
    generator = torch.Generator().manual_seed(0)
    dense = {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=generator) * 0.1,
        "fc.weight": torch.randn(10, 8) * 0.1,
    }
    sparse = {k: torch.where(v.abs() < 0.08, torch.zeros_like(v), v) for k, v in dense.items()}
    return make_run(tmp_path, "l1", "L1", sparse, 0.717), make_run(tmp_path, "l2", "L2", dense, 0.712)


def test_only_non_bias_net_weights_are_compared():
    state = {
        "net.a.weight": torch.zeros(2, 2),
        "net.a.bias": torch.zeros(2),
        "other.weight": torch.zeros(2, 2),
    }
    assert list(penalized_weights(state)) == ["a.weight"]


def test_figure_stats_and_labels(two_runs, tmp_path, capsys):
    l1, l2 = two_runs
    assert main([str(l1), str(l2), "--out", str(tmp_path / "fig")]) == 0
    figure = tmp_path / "fig" / "weight_distributions.png"
    assert figure.stat().st_size > 10_000
    stats = json.loads(figure.with_suffix(".json").read_text())
    assert stats[str(l1)]["label"] == "L1 1e-04 (val/acc 0.717)"
    assert stats[str(l1)]["count"] == stats[str(l2)]["count"] == 8 * 27 + 80
    assert stats[str(l1)]["fraction_abs_below_0.001"] > 0.4 > stats[str(l2)]["fraction_abs_below_0.001"]
    printed = capsys.readouterr().out
    assert "L2 1e-04" in printed and "figure:" in printed


def test_default_figure_goes_next_to_the_runs(two_runs):
    _, figure, _ = compare_weights(list(two_runs), labels=["L1", "L2"])
    assert figure == two_runs[0].parent / "weight_distributions.png" and figure.exists()


def test_clear_errors(two_runs, tmp_path, capsys):
    with pytest.raises(ConfigError, match="at least two"):
        compare_weights([two_runs[0]])
    other = make_run(tmp_path, "other", "L2", {"fc.weight": torch.randn(3, 3)}, 0.5)
    with pytest.raises(ConfigError, match="different architectures"):
        compare_weights([two_runs[0], other])
    assert main([str(two_runs[0]), str(tmp_path / "missing")]) == 2
    assert "is not a dllabs run folder" in capsys.readouterr().err
