"""A tokenised, labelled, split text corpus and its cache file.

:func:`build_corpus` splits the texts, builds the vocabulary from the training split only (see
``dllabs.data.text``) and encodes every text. :class:`Corpus` is saved as a plain, pickle-free ``.npz`` that
stores the key it was made with (source fingerprint and every setting that changes the result), so a later
run with the same key loads it instead of re-tokenising.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import random_split

from dllabs.data.text import Vocabulary, encode_all, tokenize_all

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the stored arrays change meaning


@dataclass
class Corpus:
    """A processed corpus: vocabulary, token ids of every review (flat + offsets), labels and the split."""

    vocab: Vocabulary
    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    splits: dict[str, np.ndarray]

    def save(self, path: Path, key: dict[str, Any]) -> None:
        """Write atomically (temporary file + rename) as a pickle-free ``.npz``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "ids": self.ids,
            "offsets": self.offsets,
            "labels": self.labels,
            "vocab": np.frombuffer("\n".join(self.vocab.words).encode("utf-8"), dtype=np.uint8),
            "key": np.frombuffer(json.dumps(key, sort_keys=True).encode("utf-8"), dtype=np.uint8),
            **{f"split_{name}": indices for name, indices in self.splits.items()},
        }
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=path.name, suffix=".tmp", delete=False
        ) as handle:
            temporary = Path(handle.name)
            try:
                np.savez(handle, **arrays)
            except BaseException:
                handle.close()
                temporary.unlink(missing_ok=True)
                raise
        temporary.chmod(0o644)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path, key: dict[str, Any]) -> Corpus | None:
        """The cached corpus, or ``None`` when it is absent, unreadable or made with other settings."""
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = json.loads(data["key"].tobytes().decode("utf-8"))
                if stored != json.loads(json.dumps(key, sort_keys=True)):
                    return None
                vocab = Vocabulary(data["vocab"].tobytes().decode("utf-8").split("\n"))
                splits = {name: data[f"split_{name}"] for name in ("train", "val", "test")}
                corpus = cls(vocab, data["ids"], data["offsets"], data["labels"], splits)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable corpus cache %s (%s); rebuilding it", path, error)
            return None
        if len(corpus.offsets) != len(corpus.labels) + 1 or corpus.offsets[-1] != len(corpus.ids):
            log.warning("ignoring inconsistent corpus cache %s; rebuilding it", path)
            return None
        return corpus


def build_corpus(
    texts: Sequence[str],
    labels: np.ndarray,
    fractions: Sequence[float],
    seed: int,
    min_freq: int,
    max_vocab: int,
) -> Corpus:
    """Split, build the vocabulary from the training reviews only, and encode every review."""
    generator = torch.Generator().manual_seed(seed)
    parts = random_split(range(len(texts)), list(fractions), generator=generator)
    splits = {
        name: np.asarray(part.indices, dtype=np.int64) for name, part in zip(("train", "val", "test"), parts)
    }
    tokens = tokenize_all(texts)
    vocab = Vocabulary.build((tokens[i] for i in splits["train"]), min_freq=min_freq, max_size=max_vocab)
    ids, offsets = encode_all(vocab, tokens)
    return Corpus(vocab, ids, offsets, np.asarray(labels, dtype=np.int8), splits)
