"""The layer table: the lab's reference numbers (docs/labs.md), and MACs cross-checked against torch's FlopCounterMode."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dllabs.analysis.layer_table import layer_table
from dllabs.nets import layers
from dllabs.nets.simplenn import SimpleNN
from dllabs.nets.simplenn3 import SimpleNN3

# lab 2 (docs/labs.md), weights only: (params, MACs) for one 1x3x32x32 input.
SIMPLENN3_REFERENCE = {
    "conv1": (1_200, 1_228_800),
    "conv2": (2_304, 665_856),
    "conv3": (25_088, 903_168),
    "fc1": (9_216, 9_216),
    "fc2": (320, 320),
}


def flop_counter_macs(model: nn.Module, *inputs) -> tuple[dict[str, int], int]:
    """Per-module MACs (= FLOPs / 2) and the total, as torch's FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    root = type(model).__name__ + "."
    per_module = {
        name.removeprefix(root): sum(counts.values()) // 2
        for name, counts in counter.get_flop_counts().items()
        if name.startswith(root)
    }
    return per_module, counter.get_total_flops() // 2


def assert_matches_flop_counter(model: nn.Module, *inputs) -> None:
    table = layer_table(model, *inputs)
    per_module, total = flop_counter_macs(model, *inputs)
    for row in table.rows:
        assert row.macs == per_module.get(row.name, 0), row.name
    assert table.total_macs == total


def test_simplenn3_matches_the_spec_reference() -> None:
    table = layer_table(SimpleNN3(), torch.randn(1, 3, 32, 32))
    assert [r.name for r in table.rows] == list(SIMPLENN3_REFERENCE)
    for name, (params, macs) in SIMPLENN3_REFERENCE.items():
        assert (table[name].params, table[name].macs) == (params, macs), name
    assert table["conv1"].input_shape == (1, 3, 32, 32)
    assert table["conv1"].output_shape == (1, 16, 32, 32)
    assert table["conv2"].input_shape == (1, 16, 15, 15) and table["conv2"].output_shape == (1, 16, 17, 17)
    assert table["conv3"].weight_shapes == ((32, 16, 7, 7),) and table["conv3"].output_shape == (1, 32, 6, 6)
    assert table["fc1"].input_shape == (1, 288)
    assert table["fc2"].weight_shapes == ((10, 32),) and table["fc2"].bias == 10
    assert table["conv1"].bias == 0
    assert table.total_params == 38_128
    assert table.total_macs == 2_807_360
    assert table.total_params_with_bias == table.model_params == 38_170


def test_simplenn3_macs_match_flop_counter() -> None:
    assert_matches_flop_counter(SimpleNN3(), torch.randn(1, 3, 32, 32))


def test_simplenn_has_82030_parameters_and_matching_macs() -> None:
    net = SimpleNN()
    table = layer_table(net, torch.randn(1, 3, 32, 32))
    assert table.total_params_with_bias == 82_030
    assert table.model_params == 82_030
    assert [r.params for r in table.rows] == [600, 1_152, 69_120, 10_080, 840]
    assert table.rows[0].macs == 28 * 28 * 5 * 5 * 3 * 8
    assert_matches_flop_counter(net, torch.randn(1, 3, 32, 32))


def test_simplenn_with_batchnorm_counts_norm_parameters_only_in_the_model_total() -> None:
    table = layer_table(SimpleNN(norm="batchnorm"), torch.randn(1, 3, 32, 32))
    assert table.total_params_with_bias == 82_030
    assert table.model_params == 82_030 + 2 * (8 + 16)


def test_resnet20_table_matches_flop_counter() -> None:
    resnet = pytest.importorskip("dllabs.nets.resnet")
    for shortcut in ("A", "B"):
        net = resnet.ResNet(depth=20, shortcut=shortcut)
        x = torch.randn(1, 3, 32, 32)
        table = layer_table(net, x)
        assert len([r for r in table.rows if r.kind == "Conv2d"]) == 19 + (2 if shortcut == "B" else 0)
        assert 0.26e6 < table.model_params < 0.28e6
        assert_matches_flop_counter(net, x)


def test_mixed_layer_types_and_batches_match_flop_counter() -> None:
    model = nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        layers.Conv2d(6, 6, (3, 1), padding="same", bias=False),
        nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2),
        nn.Flatten(2),
        nn.Conv1d(4, 8, 5, dilation=2),
        nn.Linear(217, 7),
        layers.Linear(7, 3, bias=False),
    )
    assert_matches_flop_counter(model, torch.randn(3, 4, 13, 13))
    table = layer_table(model, torch.randn(3, 4, 13, 13))
    assert table["5"].input_shape == (3, 8, 217)
    assert table["5"].macs == 3 * 8 * 217 * 7
    assert table["6"].bias == 0 and table["6"].bias_adds == 0
    assert table["5"].bias_adds == 3 * 8 * 7


def test_gru_matches_flop_counter() -> None:
    model = nn.GRU(5, 7, num_layers=2, batch_first=True)
    table = layer_table(model, torch.randn(2, 9, 5))
    _, total = flop_counter_macs(model, torch.randn(2, 9, 5))
    assert table.total_macs == total == 2 * 9 * 3 * 7 * ((5 + 7) + (7 + 7))


def _unrolled_lstm(lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """The same computation as ``lstm`` (batch_first, no projection) written with LSTMCells, step by step."""
    layer_input = x
    for layer in range(lstm.num_layers):
        outputs = []
        for direction in range(2 if lstm.bidirectional else 1):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            cell = nn.LSTMCell(layer_input.shape[-1], lstm.hidden_size)
            cell.load_state_dict(
                {
                    "weight_ih": getattr(lstm, "weight_ih" + suffix),
                    "weight_hh": getattr(lstm, "weight_hh" + suffix),
                    "bias_ih": getattr(lstm, "bias_ih" + suffix),
                    "bias_hh": getattr(lstm, "bias_hh" + suffix),
                }
            )
            steps = range(x.shape[1])
            h = c = torch.zeros(x.shape[0], lstm.hidden_size)
            out = [None] * x.shape[1]
            for t in reversed(steps) if direction else steps:
                h, c = cell(layer_input[:, t], (h, c))
                out[t] = h
            outputs.append(torch.stack(out, dim=1))
        layer_input = torch.cat(outputs, dim=-1)
    return layer_input


@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
def test_lstm_macs_match_an_unrolled_lstm_under_flop_counter(num_layers: int, bidirectional: bool) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        torch.testing.assert_close(_unrolled_lstm(lstm, x), lstm(x)[0])
        with FlopCounterMode(display=False) as counter:
            _unrolled_lstm(lstm, x)
    table = layer_table(lstm, x)
    assert table.total_macs == counter.get_total_flops() // 2
    assert table.rows[0].params == sum(
        p.numel() for n, p in lstm.named_parameters() if n.startswith("weight")
    )
    assert table.rows[0].params_with_bias == sum(p.numel() for p in lstm.parameters())


def test_lstm_classifier_counts_the_steps_it_computes() -> None:
    lstm_net = pytest.importorskip("dllabs.nets.lstm")
    tokens, lengths = torch.randint(2, 50, (2, 7)), torch.tensor([7, 4])
    net = lstm_net.LSTMClassifier(vocab_size=50, embedding_dim=4, hidden_size=6)
    table = layer_table(net, tokens, lengths)
    assert [r.kind for r in table.rows] == ["Embedding", "LSTM", "Linear"]
    embedding, lstm, head = table.rows
    assert (embedding.params, embedding.macs, embedding.input_shape) == (200, 0, (2, 7))
    assert lstm.input_shape == (2, 7, 4)  # unidirectional: the padded batch, read out at each review's end
    assert lstm.macs == 14 * (4 * 6 * 4 + 4 * 6 * 6)
    assert lstm.weight_shapes == ((24, 4), (24, 6))
    assert head.macs == 2 * 6 * 2
    assert table.total_params_with_bias == table.model_params

    bidirectional = lstm_net.LSTMClassifier(vocab_size=50, embedding_dim=4, hidden_size=6, bidirectional=True)
    table = layer_table(bidirectional, tokens, lengths)
    assert [r.kind for r in table.rows] == ["Embedding", "LSTM", "LSTM", "Linear"]
    for lstm in table.rows[1:3]:  # each direction over the padded batch (the backward one reversed per review)
        assert lstm.input_shape == (2, 7, 4)
        assert lstm.macs == 14 * (4 * 6 * 4 + 4 * 6 * 6)
    assert table.total_params_with_bias == table.model_params


def test_repeated_calls_add_up_and_unused_layers_are_listed() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(4, 4)
            self.spare = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(torch.relu(self.shared(x)))

    model = Twice()
    table = layer_table(model, torch.randn(3, 4))
    assert table["shared"].calls == 2 and table["shared"].macs == 2 * 3 * 16
    assert table.unused == ["spare"]
    assert_matches_flop_counter(model, torch.randn(3, 4))
    assert "spare" in table.to_text()


def test_training_mode_is_restored_and_hooks_removed() -> None:
    net = SimpleNN3().train()
    layer_table(net, torch.randn(1, 3, 32, 32))
    assert net.training
    assert not any(m._forward_hooks for m in net.modules())


def test_csv_and_markdown_outputs(tmp_path) -> None:
    table = layer_table(SimpleNN3(), torch.randn(1, 3, 32, 32))
    path = table.to_csv(tmp_path / "t.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["name"] for r in rows] == [*SIMPLENN3_REFERENCE, "TOTAL"]
    assert rows[0]["input_shape"] == "1x3x32x32" and rows[0]["weight_shapes"] == "16x3x5x5"
    assert int(rows[2]["macs"]) == 903_168
    assert int(rows[-1]["params"]) == 38_128 and int(rows[-1]["params_with_bias"]) == 38_170
    markdown = table.to_markdown()
    assert "| conv1 | Conv2d | `1x3x32x32` | `1x16x32x32` | `16x3x5x5` | 1,200 | 0 | 1,228,800 |" in markdown
    assert "weight elements only" in markdown and "weight elements only" in table.to_text()


def test_gpt2_conv1d_layers_and_tied_embeddings() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    tokens = torch.randint(0, 50, (1, 8))
    table = layer_table(model, tokens)
    per_module, _ = flop_counter_macs(model, tokens)
    conv1d_rows = [r for r in table.rows if r.kind == "Conv1D"]
    assert len(conv1d_rows) == 4
    for row in [*conv1d_rows, table["lm_head"]]:
        assert row.macs == per_module[row.name], row.name
    assert table["lm_head"].tied == 50 * 16  # shares transformer.wte's weight
    norm_params = sum(
        p.numel() for n, p in model.named_parameters() if ".ln_" in n or n.startswith("transformer.ln_f")
    )
    assert table.total_params_with_bias + norm_params == table.model_params
