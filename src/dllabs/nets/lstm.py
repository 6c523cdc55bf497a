"""Embedding -> LSTM -> dropout -> linear classifier over padded token batches."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import nn

from dllabs.config_types import AtLeast0, AtLeast1, DropRate, Positive
from dllabs.errors import ConfigError


def reverse_within_lengths(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``sequences [B, T, ...]`` with each row's first ``lengths[b]`` steps reversed and its padding left in place.

    The operation is its own inverse.
    """
    steps = torch.arange(sequences.shape[1], device=sequences.device)[None, :]
    lengths = lengths.to(sequences.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    index = index.reshape(*index.shape, *([1] * (sequences.dim() - 2))).expand_as(sequences)
    return sequences.gather(1, index)


class ReviewBiLSTM(nn.Module):
    """A bidirectional LSTM over right-padded batches that is exact without packing.

    The forward direction of each layer runs over the padded batch (causal: a review's outputs never see the
    padding after it); the backward direction runs over each review reversed within its own length, so it
    starts at the review's last token, not in the padding, and its outputs are put back in order. Each
    direction is one ``nn.LSTM`` call over the whole batch (on a CPU several times faster than packing). Outputs
    at padding steps are meaningless and must not be read; ``[B, T, 2 * hidden_size]`` like ``nn.LSTM``.

    Its parameters are one single-layer ``nn.LSTM`` per layer and direction (``forward_layers.<k>``,
    ``backward_layers.<k>``); a state dict saved from the former ``nn.LSTM(bidirectional=True)`` layout
    (``weight_ih_l<k>``, ``weight_ih_l<k>_reverse``, ...) loads into it.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.dropout = dropout
        self.hidden_size = hidden_size
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(size, hidden_size, batch_first=True) for size in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(size, hidden_size, batch_first=True) for size in sizes)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs = inputs
        for k, (forward, backward) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if k > 0:
                outputs = F.dropout(outputs, self.dropout, self.training)
            ahead, _ = forward(outputs)
            behind, _ = backward(reverse_within_lengths(outputs, lengths))
            outputs = torch.cat([ahead, reverse_within_lengths(behind, lengths)], dim=-1)
        return outputs

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Rename the former ``nn.LSTM(bidirectional=True)`` keys (``<prefix>weight_ih_l0_reverse``, ...)."""
        for name in [key for key in state_dict if key.startswith(prefix)]:
            old = name[len(prefix) :]
            if "." in old or "_l" not in old:
                continue
            base, _, rest = old.rpartition("_l")
            layer, reverse, _ = rest.partition("_reverse")
            group = "backward_layers" if reverse else "forward_layers"
            state_dict[f"{prefix}{group}.{layer}.{base}_l0"] = state_dict.pop(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class LSTMClassifier(nn.Module):
    """Classify token sequences: ``forward(tokens [B, T], lengths [B]) -> logits [B, num_classes]``.

    A review's logits never depend on how much padding its batch adds. A unidirectional LSTM runs over the
    right-padded batch, which is exact because it is causal: the outputs up to a review's last token never see
    the padding after it, and only those are read (on a CPU several times faster than packing). A bidirectional
    one (:class:`ReviewBiLSTM`) runs its backward direction over each review reversed within its own length, so
    it is exact without packing too.

    ``pooling`` turns the LSTM into one vector per review: ``last`` = the top layer's output at the review's last
    token (both directions when bidirectional: the forward one at the last token, the backward one at the first,
    where it ends), ``max``/``mean`` = over the review's time steps of the top layer's outputs.

    Initialisation: ``init=default`` is PyTorch's (embedding N(0, 1), LSTM and linear uniform); ``init=template``
    is the course template's: xavier-normal embedding and linear weights, orthogonal LSTM weight matrices, zero
    biases (the padding word's vector stays zero). ``embedding_init_std`` (only with ``init=default``) draws the
    word vectors from N(0, std²) instead: with a 1-dim embedding, N(0, 1) gives every word a random sentiment
    score as large as the ones training must learn, and learning barely starts within an epoch.
    """

    def __init__(
        self,
        vocab_size: Annotated[int, Ge(3)],
        embedding_dim: AtLeast1 = 1,
        hidden_size: AtLeast1 = 100,
        num_layers: AtLeast1 = 1,
        bidirectional: bool = False,
        dropout: DropRate = 0.0,
        num_classes: AtLeast1 = 2,
        pooling: Literal["last", "max", "mean"] = "last",
        padding_idx: AtLeast0 = 0,
        embedding_init_std: Positive | None = None,
        init: Literal["default", "template"] = "default",
    ) -> None:
        super().__init__()
        if embedding_init_std is not None and init != "default":
            raise ConfigError(
                f"model.net.embedding_init_std={embedding_init_std} and model.net.init={init} both set the word "
                "vectors; choose one (model.net.embedding_init_std=null for the template's initialisation)"
            )
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        if embedding_init_std is not None:  # drawn before the LSTM's weights, so a seed gives the same net as ever
            with torch.no_grad():
                nn.init.normal_(self.embedding.weight, std=embedding_init_std)
                self.embedding.weight[padding_idx].zero_()
        if bidirectional:
            self.lstm: nn.Module = ReviewBiLSTM(embedding_dim, hidden_size, num_layers, dropout)
        else:
            self.lstm = nn.LSTM(
                embedding_dim,
                hidden_size,
                num_layers=num_layers,
                dropout=dropout if num_layers > 1 else 0.0,
                batch_first=True,
            )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        if init == "template":
            self._template_init()

    @torch.no_grad()
    def _template_init(self) -> None:
        """The course template's initialisation (see the class docstring)."""
        nn.init.xavier_normal_(self.embedding.weight)
        if self.embedding.padding_idx is not None:
            self.embedding.weight[self.embedding.padding_idx].zero_()
        for name, parameter in self.lstm.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(parameter)
            else:
                nn.init.zeros_(parameter)
        nn.init.xavier_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if tokens.numel() and int(tokens.max()) >= self.embedding.num_embeddings:
            raise ConfigError(
                f"token id {int(tokens.max())} does not fit the embedding of {self.embedding.num_embeddings} "
                "words; make model.net.vocab_size at least the data's vocabulary size (data.max_vocab_size)."
            )
        return self.head(self.dropout(self._review_vectors(tokens, lengths.clamp(min=1))))

    def _review_vectors(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One vector per review from the top layer, padding steps excluded."""
        embedded = self.embedding(tokens)
        lengths = lengths.to(embedded.device)
        if self.bidirectional:
            outputs = self.lstm(embedded, lengths)
        else:
            outputs, _ = self.lstm(embedded)
        rows = torch.arange(outputs.shape[0], device=outputs.device)
        if self.pooling == "last":
            last = outputs[rows, lengths - 1]
            if not self.bidirectional:
                return last
            hidden = self.lstm.hidden_size
            return torch.cat([last[:, :hidden], outputs[:, 0, hidden:]], dim=-1)
        valid = torch.arange(outputs.shape[1], device=outputs.device)[None, :] < lengths[:, None]
        if self.pooling == "max":
            return outputs.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)
        return outputs.masked_fill(~valid[..., None], 0.0).sum(dim=1) / lengths[:, None].to(outputs.dtype)
