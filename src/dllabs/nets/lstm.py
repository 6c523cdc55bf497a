"""Embedding -> LSTM -> dropout -> linear classifier over padded token batches."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dllabs.errors import ConfigError

POOLINGS = ("last", "max", "mean")


class LSTMClassifier(nn.Module):
    """Classify token sequences: ``forward(tokens [B, T], lengths [B]) -> logits [B, num_classes]``.

    A review's logits never depend on how much padding its batch adds. A unidirectional LSTM runs over the
    right-padded batch, which is exact because it is causal: the outputs up to a review's last token never see
    the padding after it, and only those are read (on a CPU this is several times faster than packing). A
    bidirectional LSTM's backward direction would start in the padding, so its sequences are packed.

    ``pooling`` turns the LSTM into one vector per review: ``last`` = the top layer's output at the review's last
    token (both directions when bidirectional), ``max``/``mean`` = over the review's time steps of the top
    layer's outputs. ``embedding_init_std`` draws the word vectors from N(0, std²) instead of PyTorch's N(0, 1):
    with a 1-dim embedding, N(0, 1) gives every word a random sentiment score as large as the ones training must
    learn, and learning barely starts within an epoch.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 1,
        hidden_size: int = 100,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        num_classes: int = 2,
        pooling: str = "last",
        padding_idx: int = 0,
        embedding_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"model.net.pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.net.dropout must be in [0, 1); got {dropout}")
        if embedding_init_std is not None and not embedding_init_std > 0:
            raise ConfigError(
                f"model.net.embedding_init_std must be > 0 (or null for PyTorch's N(0, 1)); got {embedding_init_std}"
            )
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        if embedding_init_std is not None:
            with torch.no_grad():
                nn.init.normal_(self.embedding.weight, std=embedding_init_std)
                self.embedding.weight[padding_idx].zero_()
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if tokens.numel() and int(tokens.max()) >= self.embedding.num_embeddings:
            raise ConfigError(
                f"token id {int(tokens.max())} does not fit the embedding of {self.embedding.num_embeddings} "
                "words; make model.net.vocab_size at least the data's vocabulary size (data.max_vocab_size)."
            )
        return self.head(self.dropout(self._review_vectors(tokens, lengths.clamp(min=1))))

    def _packs(self) -> bool:
        """Pack only where padding would reach the outputs read: the backward direction starts in it."""
        return self.lstm.bidirectional

    def _review_vectors(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One vector per review from the top layer, padding steps excluded."""
        embedded = self.embedding(tokens)
        if self._packs():
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_outputs, (hidden, _) = self.lstm(packed)
            if self.pooling == "last":
                top = hidden[-(2 if self.lstm.bidirectional else 1) :]
                return top.transpose(0, 1).reshape(tokens.shape[0], -1)
            outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=tokens.shape[1])
        else:
            outputs, _ = self.lstm(embedded)
        lengths = lengths.to(outputs.device)
        if self.pooling == "last":
            return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]
        valid = torch.arange(outputs.shape[1], device=outputs.device)[None, :] < lengths[:, None]
        if self.pooling == "max":
            return outputs.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)
        return outputs.masked_fill(~valid[..., None], 0.0).sum(dim=1) / lengths[:, None].to(outputs.dtype)
