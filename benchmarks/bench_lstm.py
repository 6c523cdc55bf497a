"""LSTM sentiment training step: ``LSTMClassifier`` against the lab's plain ``nn.LSTM`` and against packing.

- baseline, the usual lab code: embedding -> ``nn.LSTM`` over the right-padded ``[B, T]`` batch, last time step
  -> linear. Its result depends on the padding (a review is summarised after its batch's pad steps);
- ``LSTMClassifier``, the framework's net: exact whatever the padding (a unidirectional LSTM is read out at each
  review's last token; a bidirectional one runs its backward direction over each review reversed within its
  own length);
- ``packed``: ``nn.LSTM`` over packed sequences (``pack_padded_sequence``), the textbook way to be exact.

Each runs Adam training steps (forward, backward, update) on the same batches, for the lab's reference setting
(embedding 1, LSTM 100, batch 96, 256 tokens) and for ``lstm_imdb_strong`` (embedding 128, BiLSTM 128,
max-pooling, batch 64, 512 tokens). Review lengths are drawn to look like IMDB after stop-word removal
(log-normal, median 110 tokens). ``LSTMClassifier`` also runs under bf16 autocast (``trainer.precision=bf16-mixed``)
against its fp32 row. No ``torch.compile`` row: the recurrence's Python loop over time steps and the batches'
varying lengths make it recompile per shape, which no short run pays back.

    python benchmarks/bench_lstm.py [--quick]
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from common import compare, device_kind, main_for, median_time, row
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dllabs.nets.lstm import LSTMClassifier

NAME = "lstm"
VOCAB = 36_287
SETTINGS = {
    "reference": {"batch": 96, "max_length": 256, "net": {"embedding_dim": 1, "hidden_size": 100}},
    "strong": {
        "batch": 64,
        "max_length": 512,
        "net": {
            "embedding_dim": 128,
            "hidden_size": 128,
            "bidirectional": True,
            "pooling": "max",
            "dropout": 0.5,
        },
    },
}


class PaddedLSTM(nn.Module):
    """The baseline: the LSTM reads the whole right-padded batch; the last time step feeds the head."""

    def __init__(
        self, embedding_dim: int, hidden_size: int, bidirectional: bool = False, **_: object
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 2)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(self.embedding(tokens))
        return self.head(outputs[:, -1])


class PackedLSTM(nn.Module):
    """The textbook exact net: ``nn.LSTM`` over packed sequences, read out like ``LSTMClassifier``."""

    def __init__(
        self,
        embedding_dim: int,
        hidden_size: int,
        bidirectional: bool = False,
        pooling: str = "last",
        **_: object,
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.embedding = nn.Embedding(VOCAB, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 2)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_outputs, (hidden, _) = self.lstm(packed)
        if self.pooling == "last":
            return self.head(hidden.transpose(0, 1).reshape(tokens.shape[0], -1))
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=tokens.shape[1])
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
        return self.head(outputs.masked_fill(~valid[..., None], float("-inf")).amax(dim=1))


def review_batches(
    count: int, batch: int, max_length: int, device: torch.device
) -> list[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        lengths = torch.exp(torch.randn(batch, generator=generator) * 0.7 + 4.7).long().clamp(5, max_length)
        tokens = torch.randint(2, VOCAB, (batch, int(lengths.max())), generator=generator)
        tokens[torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]] = 0
        labels = torch.randint(0, 2, (batch,), generator=generator)
        batches.append((tokens.to(device), lengths.to(device), labels.to(device)))
    return batches


def step_time(model: nn.Module, batches: list[tuple[torch.Tensor, ...]], repeats: int, bf16: bool = False) -> float:
    """Median seconds of one pass of Adam steps over ``batches``, divided by the number of batches (``bf16``: the
    forward and the loss under bf16 autocast, as Lightning's bf16-mixed)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-6)
    loss_fn = nn.CrossEntropyLoss()
    synchronize = torch.cuda.synchronize if batches[0][0].is_cuda else (lambda: None)

    def epoch() -> None:
        for tokens, lengths, labels in batches:
            with torch.autocast(tokens.device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
                loss = loss_fn(model(tokens, lengths), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize()

    return median_time(epoch, repeats, warmup=1) / len(batches)


def run(quick: bool) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    rows = []
    for name, setting in SETTINGS.items():
        batches = review_batches(3 if quick else 10, setting["batch"], setting["max_length"], device)
        mean_length = sum(float(b[1].float().mean()) for b in batches) / len(batches)
        padded_length = sum(b[0].shape[1] for b in batches) / len(batches)
        note = f"batch {setting['batch']}, mean review {mean_length:.0f} of {padded_length:.0f} padded tokens"
        baseline = f"{name}: nn.LSTM over the padded batch (lab baseline)"
        exact = f"{name}: LSTMClassifier"
        packed = f"{name}: nn.LSTM over packed sequences"
        exact_bf16 = f"{name}: LSTMClassifier, bf16-mixed"
        for label, model, bf16 in (
            (baseline, PaddedLSTM(**setting["net"]), False),
            (exact, LSTMClassifier(VOCAB, num_classes=2, **setting["net"]), False),
            (packed, PackedLSTM(**setting["net"]), False),
            (exact_bf16, LSTMClassifier(VOCAB, num_classes=2, **setting["net"]), True),
        ):
            seconds = step_time(model.to(device), batches, 1 if quick else 3, bf16)
            rows.append(
                row(NAME, label, setting["batch"] / seconds, f"reviews/s ({device_kind()})", note=note)
            )
        compare(rows, exact, baseline, better="higher")
        compare(rows, packed, baseline, better="higher")
        compare(rows, exact_bf16, exact, better="higher")
    return rows


if __name__ == "__main__":
    raise SystemExit(main_for(NAME, run, __doc__))
