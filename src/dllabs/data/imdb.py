"""IMDB movie reviews (50k, positive/negative) for the LSTM sentiment lab: the Dataset, its collate and the
DataModule.

The reviews come from a local CSV, ``aclImdb`` folder or archive, or a download (``dllabs.data.imdb_sources``).
All 50k reviews are pooled and split 7:1:2 with ``split_seed``; ``seed`` only orders the training batches (a
new order each epoch, reproducible on resume). The vocabulary comes from the training split only, and the
processed corpus is cached (``dllabs.data.corpus``) keyed by the source file and every setting that changes it,
so a second run does not re-tokenise; ``max_length`` is applied when items are read and is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import numpy as np
import torch
from annotated_types import Ge, Predicate
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from dllabs.config_types import AtLeast0, AtLeast1
from dllabs.data.corpus import CACHE_FORMAT, Corpus, build_corpus
from dllabs.data.imdb_sources import (
    ARCHIVE,
    FOLDER,
    URL,
    Source,
    SourceName,
    download_archive,
    find_source,
    read_reviews,
)
from dllabs.data.prediction import PredictionData
from dllabs.data.review_inputs import read_review_inputs
from dllabs.data.sampling import seeded_loader
from dllabs.data.text import PAD_ID, UNK_ID, Vocabulary, encode_all, english_stopwords, tokenize_all
from dllabs.errors import CheckpointMismatchError, DatasetNotFoundError

log = logging.getLogger(__name__)

CLASSES = ("negative", "positive")


def three_fractions(split: Sequence[float]) -> bool:
    """three fractions in (0, 1) for train, val, test that add up to 1."""
    return len(split) == 3 and all(0 < part < 1 for part in split) and abs(sum(split) - 1.0) <= 1e-6


SplitFractions = Annotated[Sequence[float], Predicate(three_fractions)]


class EncodedReviews(Dataset):
    """Reviews as token ids: item ``i`` is ``(ids[:max_length] as int64, label)``.

    A review left empty by normalisation (only stop words) is ``[<unk>]``, so every item has a length >= 1.
    """

    def __init__(
        self,
        ids: np.ndarray | torch.Tensor,
        offsets: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray | None = None,
        max_length: int | None = 256,
    ) -> None:
        self.ids = torch.as_tensor(ids, dtype=torch.int64)  # no copy when given an int64 tensor
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.indices = np.arange(len(self.labels)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        row = int(self.indices[item])
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        if self.max_length is not None:
            end = min(end, start + self.max_length)
        tokens = self.ids[start:end] if end > start else torch.tensor([UNK_ID])
        return tokens, int(self.labels[row])


def pad_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest review with ``<pad>`` (0): ``(tokens [B, T], lengths [B], labels [B])``."""
    sequences = [tokens for tokens, _ in batch]
    lengths = torch.tensor([len(tokens) for tokens in sequences], dtype=torch.int64)
    labels = torch.tensor([label for _, label in batch], dtype=torch.int64)
    return pad_sequence(sequences, batch_first=True, padding_value=PAD_ID), lengths, labels


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dllabs" / "imdb"


class IMDBDataModule(L.LightningDataModule):
    """IMDB sentiment: batches ``(tokens, lengths, labels)`` for ``ClassificationTask`` + ``LSTMClassifier``.

    ``max_vocab_size`` caps the vocabulary (most frequent words first) and is what the model's embedding is
    sized with, so the model can be built before the data is read; ``vocab_size`` is the actual size.
    """

    num_classes = 2
    classes = CLASSES

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: AtLeast1 = 96,
        eval_batch_size: AtLeast1 | None = None,
        max_length: AtLeast1 | None = 256,
        min_freq: AtLeast1 = 5,
        max_vocab_size: Annotated[int, Ge(3)] = 40_000,
        split: SplitFractions = (0.7, 0.1, 0.2),
        split_seed: int = 12,
        seed: int = 0,
        source: SourceName = "auto",
        download: bool = True,
        cache_dir: str | None = None,
        num_workers: AtLeast0 = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        fractions = [float(f) for f in split]
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_length = max_length
        self.min_freq = min_freq
        self.max_vocab_size = max_vocab_size
        self.split_fractions = fractions
        self.split_seed = split_seed
        self.seed = seed
        self.source = source
        self.download = download
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.corpus: Corpus | None = None
        self.vocab: Vocabulary | None = None
        self.cache_hit: bool | None = None
        self._prepared: Corpus | None = None
        self.datasets: dict[str, EncodedReviews] = {}

    # ----------------------------------------------------------------- source and cache
    def locate(self) -> Source:
        """The review source, downloading the official archive when allowed and nothing local is found."""
        found = find_source(self.data_dir, self.source)
        if found is not None:
            return found
        reason = "download is off (data.download=false)"
        if self.download and self.source in ("auto", "archive"):
            try:
                return download_archive(self.data_dir)
            except (OSError, RuntimeError, ValueError) as error:  # network, disk, checksum: same advice
                reason = f"downloading {URL} failed: {error}"
        where = f"{self.data_dir / 'imdb'} or {self.data_dir}"
        raise DatasetNotFoundError(
            f"IMDB reviews not found in {where} ({reason}). Put one of these there: 'IMDB Dataset.csv' or "
            f"'IMDB Dataset.csv.gz' (columns review, sentiment), the unpacked '{FOLDER}/' folder, or "
            f"'{ARCHIVE}' from {URL}; or point data.data_dir (DLLABS_DATA_DIR) at the folder that holds it."
        )

    def cache_key(self, source: Source) -> dict[str, Any]:
        stopwords = hashlib.sha256("\n".join(sorted(english_stopwords())).encode()).hexdigest()[:16]
        return {
            "format": CACHE_FORMAT,
            "source": source.fingerprint(),
            "split": self.split_fractions,
            "split_seed": self.split_seed,
            "min_freq": self.min_freq,
            "max_vocab_size": self.max_vocab_size,
            "stopwords": stopwords,
        }

    def cache_path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.cache_dir / f"imdb-{digest}.npz"

    def load_corpus(self) -> Corpus:
        """The processed corpus from the cache, or built from the source and cached."""
        source = self.locate()
        key = self.cache_key(source)
        path = self.cache_path(key)
        corpus = Corpus.load(path, key)
        self.cache_hit = corpus is not None
        if corpus is not None:
            log.info("IMDB: processed corpus loaded from cache %s", path)
            return corpus
        started = time.perf_counter()
        texts, labels = read_reviews(source)
        corpus = build_corpus(
            texts, labels, self.split_fractions, self.split_seed, self.min_freq, self.max_vocab_size
        )
        log.info(
            "IMDB: %d reviews from %s tokenised in %.1f s, vocabulary %d words",
            len(texts),
            source.path,
            time.perf_counter() - started,
            len(corpus.vocab),
        )
        try:
            corpus.save(path, key)
        except OSError as error:
            log.warning(
                "IMDB: could not write the cache %s (%s); set data.cache_dir to a writable folder",
                path,
                error,
            )
        return corpus

    # ----------------------------------------------------------------- Lightning hooks
    def prepare_data(self) -> None:
        self._prepared = self.load_corpus()

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            corpus, self._prepared = self._prepared or self.load_corpus(), None
            if self.vocab is not None and self.vocab.words != corpus.vocab.words:
                raise CheckpointMismatchError(
                    "the IMDB vocabulary rebuilt from the data differs from the one stored with the model; "
                    "the data or its settings (min_freq, split, split_seed, max_vocab_size) changed since "
                    "training."
                )
            self.corpus, self.vocab = corpus, corpus.vocab
            ids = torch.from_numpy(corpus.ids.astype(np.int64))  # one copy shared by the three splits
            self.datasets = {
                name: EncodedReviews(ids, corpus.offsets, corpus.labels, indices, self.max_length)
                for name, indices in corpus.splits.items()
            }

    @property
    def vocab_size(self) -> int:
        if self.vocab is None:
            raise RuntimeError("call setup() first: the vocabulary is built from the data")
        return len(self.vocab)

    def _loader(self, name: str, batch_size: int, shuffle: bool = False) -> DataLoader:
        return seeded_loader(
            self.datasets[name],
            self.seed,
            shuffle=shuffle,
            batch_size=batch_size,
            collate_fn=pad_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader("test", self.eval_batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Stored in checkpoints so a trained model can be used without the training data."""
        return {"vocab": list(self.vocab.words)} if self.vocab is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "vocab" not in state_dict:
            return
        vocab = Vocabulary(state_dict["vocab"])
        if self.corpus is not None and self.corpus.vocab.words != vocab.words:
            raise CheckpointMismatchError(
                "the checkpoint's IMDB vocabulary differs from the one built from the data now; the data or "
                "its settings (min_freq, split, split_seed, max_vocab_size) changed since the checkpoint was "
                "written."
            )
        self.vocab = vocab

    # ----------------------------------------------------------------- analysis and prediction
    def review_texts(self, split: str = "test") -> list[str]:
        """Raw texts of one split, in the split's order (re-read from the source)."""
        self.setup()
        texts, _ = read_reviews(self.locate())
        return [texts[i] for i in self.corpus.splits[split]]

    def encode_texts(self, texts: Sequence[str], labels: Sequence[int] | None = None) -> EncodedReviews:
        """Any texts encoded with this vocabulary (``labels`` default to -1 = unknown)."""
        if self.vocab is None:
            self.setup()
        ids, offsets = encode_all(self.vocab, tokenize_all(texts))
        targets = (
            np.full(len(texts), -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        )
        return EncodedReviews(ids, offsets, targets, max_length=self.max_length)

    def prediction_data(self, input: str | None = None, text: str | None = None) -> PredictionData:
        """``text``: one review; ``input``: a text file with one review per line, or a CSV with a ``review``
        column (and optionally ``sentiment`` for an accuracy report)."""
        texts, labels = read_review_inputs(input, text)
        dataset = self.encode_texts(texts, labels)
        loader = DataLoader(dataset, batch_size=self.eval_batch_size, collate_fn=pad_collate)
        return PredictionData(
            loader=loader,
            ids=[str(i) for i in range(len(texts))],
            labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
            texts=list(texts),
        )
