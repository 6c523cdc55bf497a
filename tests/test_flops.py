"""Lightning's model summary counts an LSTM's FLOPs (torch's counter has no formula for the fused ``aten.lstm``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.flop_counter import FlopCounterMode

import dllabs.nets  # noqa: F401  - registers the formulas


def _flops(module: nn.Module, *inputs) -> int:
    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_lstm_counts_what_the_decomposed_op_counts(num_layers, bidirectional, bias):
    """On the meta device the op decomposes into the matmuls torch already counts: the reference."""
    args = {"input_size": 8, "hidden_size": 16, "num_layers": num_layers, "bidirectional": bidirectional,
            "bias": bias, "batch_first": True}
    real = _flops(nn.LSTM(**args), torch.randn(3, 7, 8))
    with torch.device("meta"):
        decomposed = _flops(nn.LSTM(**args), torch.randn(3, 7, 8))
    directions = 2 if bidirectional else 1
    by_hand = sum(2 * 3 * 7 * 64 * ((8 if layer == 0 else 16 * directions) + 16) * directions for layer in range(num_layers))
    assert real == decomposed == by_hand


def test_packed_lstm_counts_only_real_time_steps():
    lstm = nn.LSTM(8, 16, batch_first=True)
    packed = pack_padded_sequence(torch.randn(3, 7, 8), torch.tensor([7, 4, 2]), batch_first=True)
    assert _flops(lstm, packed) == 2 * (7 + 4 + 2) * 64 * (8 + 16)


@pytest.mark.parametrize("bidirectional", [False, True])  # True: the unpacked ReviewBiLSTM (one nn.LSTM per direction)
def test_model_summary_of_the_lab_lstm_counts_its_recurrence(bidirectional):
    """What a user sees in the console: Lightning's summary of the LSTM net, recurrence included (it showed 1.0 K)."""
    import lightning as L
    from lightning.pytorch.utilities.model_summary import ModelSummary

    from dllabs.nets.lstm import LSTMClassifier

    class Task(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = LSTMClassifier(vocab_size=100, embedding_dim=8, hidden_size=16, bidirectional=bidirectional)
            self.example_input_array = (torch.randint(1, 100, (1, 10)), torch.tensor([10]))

        def forward(self, tokens, lengths):
            return self.net(tokens, lengths)

    directions = 2 if bidirectional else 1
    recurrent = directions * 2 * 10 * 64 * (8 + 16)
    assert ModelSummary(Task()).total_flops >= recurrent
