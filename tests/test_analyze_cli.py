"""Lab 2 end to end: scripts/analyze.py, the weight/gradient histogram study, the histogram callback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dllabs.analysis.cli import analyze
from dllabs.analysis.example_inputs import example_inputs
from dllabs.analysis.histograms import histogram_study, one_backward_pass, zero_weight_pass
from dllabs.callbacks.histograms import WeightHistograms
from dllabs.errors import ConfigError
from dllabs.nets.simplenn3 import SimpleNN3
from tests.conftest import ROOT, compose_config, run_cli


def _events(folder: Path) -> EventAccumulator:
    files = sorted(folder.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard events under {folder}"
    accumulator = EventAccumulator(str(files[-1].parent), size_guidance={"histograms": 0, "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.slow
def test_analyze_script_prints_the_table_and_writes_its_files(tmp_path: Path) -> None:
    result = run_cli(["scripts/analyze.py", f"hydra.run.dir={tmp_path}"], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for number in ("1,228,800", "665,856", "903,168", "25,088", "9,216", "2,807,360"):
        assert number in out
    assert "weight elements only" in out and "exactly zero" in out
    rows = list(csv.DictReader((tmp_path / "layer_table.csv").open()))
    assert [(r["name"], int(r["params"]), int(r["macs"])) for r in rows[:5]] == [
        ("conv1", 1_200, 1_228_800),
        ("conv2", 2_304, 665_856),
        ("conv3", 25_088, 903_168),
        ("fc1", 9_216, 9_216),
        ("fc2", 320, 320),
    ]
    assert "| conv3 |" in (tmp_path / "layer_table.md").read_text()
    summary = json.loads((tmp_path / "layer_analysis.json").read_text())
    assert summary["input_shape"] == [1, 3, 32, 32] and summary["totals"]["macs"] == 2_807_360
    zero = summary["histograms"]["zero_gradients_with_zero_weights"]
    assert {"conv1.weight", "conv2.weight", "conv3.weight", "fc1.weight"} <= set(zero)
    for case in ("initial", "zero_weights"):
        assert (tmp_path / f"histograms_{case}.png").stat().st_size > 10_000
    tags = _events(tmp_path / "tensorboard").Tags()
    assert "zero_weights/gradients/conv1.weight" in tags["histograms"]
    assert "initial/histograms" in tags["images"]


def test_analyze_reports_a_wrong_input_shape_as_a_config_error(tmp_path: Path) -> None:
    cfg = compose_config(["input_shape=[1,3,8,8]"], tmp_path, config_name="analyze")
    with pytest.raises(ConfigError, match=r"cannot run on an input of shape \[1, 3, 8, 8\].*input_shape="):
        analyze(cfg)
    cfg = compose_config(["model.net.input_size=8"], tmp_path, config_name="analyze")
    with pytest.raises(ConfigError, match="too small"):
        analyze(cfg)


@pytest.mark.parametrize(
    ("model", "overrides", "input_shape", "first_layer"),
    [
        ("simplenn", [], [1, 3, 32, 32], "features.0"),
        ("resnet20", ["model.net.shortcut=B"], [1, 3, 32, 32], "conv1"),
        ("lstm", ["model.net.vocab_size=300", "input_shape=[2,12]"], [2, 12], "embedding"),
        ("lms", [], [1, 3], "linear"),
    ],
)
def test_analyze_works_for_every_lab_model(
    tmp_path: Path, model, overrides, input_shape, first_layer
) -> None:
    cfg = compose_config([f"model={model}", "histograms=false", *overrides], tmp_path, config_name="analyze")
    table = analyze(cfg)
    assert table.rows[0].name == first_layer
    summary = json.loads((tmp_path / "layer_analysis.json").read_text())
    assert summary["input_shape"] == input_shape
    assert summary["totals"]["params_with_bias"] == table.total_params_with_bias > 0
    assert (tmp_path / "layer_table.csv").exists() and not (tmp_path / "histograms_initial.png").exists()
    if model == "simplenn":
        assert table.model_params == 82_030
    if model == "lstm":
        assert summary["input_dtype"] == "int64" and table.rows[1].input_shape == (2, 12, 1)


def test_example_inputs_follow_the_first_layer_and_overrides() -> None:
    (x,) = example_inputs(SimpleNN3())
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    (x,) = example_inputs(nn.Sequential(nn.Linear(7, 2)))
    assert x.shape == (1, 7)
    tokens, lengths = example_inputs(_TokenNet(), [3, 5])
    assert tokens.dtype == torch.long and tokens.max() < 20 and lengths.tolist() == [5, 5, 5]
    with pytest.raises(ConfigError, match="input_dtype"):
        example_inputs(SimpleNN3(), [1, 3, 32, 32], "int8")
    with pytest.raises(ConfigError, match="positive"):
        example_inputs(SimpleNN3(), [1, 0, 32, 32])


class _TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens).sum(1) / lengths[:, None])


def test_zero_weights_make_every_gradient_below_the_last_layer_exactly_zero() -> None:
    torch.manual_seed(0)
    net = SimpleNN3()
    x = torch.randn(1, 3, 32, 32)
    initial = one_backward_pass(net, [x])
    assert initial.zero_gradient_names() == []
    zeroed = zero_weight_pass(net, [x])
    assert zeroed.zero_gradient_names() == [
        "conv1.weight",
        "conv2.weight",
        "conv3.weight",
        "fc1.weight",
        "fc1.bias",
    ]
    # the last layer's input is relu(fc1.bias): its weight gradient is (output error) x relu(fc1.bias)
    hidden = torch.relu(net.fc1.bias.detach())
    grad = zeroed.gradients["fc2.weight"]
    assert torch.equal(grad[:, hidden == 0], torch.zeros_like(grad[:, hidden == 0]))
    assert (grad[:, hidden > 0] != 0).all()
    assert (zeroed.gradients["fc2.bias"] != 0).all()
    assert net.conv1.weight.abs().sum() > 0, "the study must not touch the caller's model"
    all_zero = zero_weight_pass(net, [x], zero_biases=True)
    assert all_zero.nonzero_gradient_names() == ["fc2.bias"]


def test_histogram_study_writes_figures_tensorboard_and_observation(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    writer = SummaryWriter(str(tmp_path / "tb"))
    study = histogram_study(mlp, [torch.randn(4, 6)], tmp_path, writer=writer, zero_biases=True)
    writer.close()
    assert "3 of 4 gradients are exactly zero: 0.weight, 0.bias, 2.weight." in study["observation"]
    assert "Non-zero gradients: 2.bias." in study["observation"] and "symmetry" in study["observation"]
    assert study["figures"]["zero_weights"].exists() and study["figures"]["initial"].exists()
    tags = _events(tmp_path / "tb").Tags()
    assert {"initial/weights/0.weight", "zero_weights/gradients/2.bias"} <= set(tags["histograms"])
    assert "zero_weights/histograms" in tags["images"]
    single = histogram_study(nn.Linear(3, 1), [torch.randn(5, 3)], tmp_path / "single")
    assert "No gradient vanishes" in single["observation"]


class _TinyTask(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_histogram_callback_logs_weights_and_gradients_per_epoch(tmp_path: Path) -> None:
    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    trainer = L.Trainer(
        max_epochs=3,
        logger=TensorBoardLogger(str(tmp_path), name="tb", version=""),
        callbacks=[WeightHistograms(every_n_epochs=2, include_biases=False)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_TinyTask(), DataLoader(data, batch_size=8))
    events = _events(tmp_path / "tb")
    tags = set(events.Tags()["histograms"])
    assert tags == {
        "weights/net.0.weight",
        "weights/net.2.weight",
        "gradients/net.0.weight",
        "gradients/net.2.weight",
    }
    assert [e.step for e in events.Histograms("weights/net.0.weight")] == [
        2,
        6,
    ]  # epochs 0 and 2, 2 steps each
    assert [e.step for e in events.Histograms("gradients/net.2.weight")] == [
        1,
        5,
    ]  # before the epoch's last step


def test_histogram_callback_config_adds_to_the_default_callbacks(tmp_path: Path) -> None:
    cfg = compose_config(["callbacks=histograms"], tmp_path)
    assert cfg.callbacks.histograms._target_ == "dllabs.callbacks.histograms.WeightHistograms"
    assert "model_checkpoint" in cfg.callbacks
    assert "histograms" not in compose_config([], tmp_path).callbacks
    with pytest.raises(ValueError, match="every_n_epochs"):
        WeightHistograms(every_n_epochs=0)


def test_simplenn3_model_config_builds(tmp_path: Path) -> None:
    from dllabs.runs import instantiate_task

    cfg = compose_config(["model=simplenn3"], tmp_path)
    task = instantiate_task(cfg)
    assert isinstance(task.net, SimpleNN3)
    assert task(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert (ROOT / "scripts" / "analyze.py").exists()
