"""Text normalisation, tokenisation and a frequency-cut vocabulary for the word-level sentiment lab.

A review is lower-cased, its HTML line breaks (``<br />``) become spaces, punctuation is deleted (so
``don't`` -> ``dont`` and ``well-made`` -> ``wellmade``), it is split on white space and English stop words
(NLTK's list, shipped in ``stopwords_en.txt``) are dropped. Stop words are matched after normalisation, so the
list's apostrophe entries (``don't``) never match; its bare forms (``don``, ``t``, ``s``) do.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

from dllabs.errors import ConfigError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_PUNCTUATION = re.compile(r"[^\w\s]+")


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """NLTK's English stop-word list (179 words), read from the package data."""
    text = resources.files("dllabs.data").joinpath("stopwords_en.txt").read_text(encoding="utf-8")
    return frozenset(word for word in text.split() if word)


def normalize(text: str) -> str:
    """Lower-case, replace ``<br />`` with a space and delete punctuation."""
    return _PUNCTUATION.sub("", _LINE_BREAK.sub(" ", text.lower()))


def tokenize(text: str, stopwords: frozenset[str] | None = None) -> list[str]:
    """Normalised words of ``text`` without stop words (NLTK's English list unless given)."""
    drop = english_stopwords() if stopwords is None else stopwords
    return [word for word in normalize(text).split() if word not in drop]


def tokenize_all(texts: Iterable[str], stopwords: frozenset[str] | None = None) -> list[list[str]]:
    """``tokenize`` for many texts, with the stop-word set looked up once."""
    drop = english_stopwords() if stopwords is None else stopwords
    return [tokenize(text, drop) for text in texts]


class Vocabulary:
    """Word <-> id map with ``<pad>`` = 0 and ``<unk>`` = 1, then words by falling frequency (ties A-Z)."""

    def __init__(self, words: Sequence[str]) -> None:
        if list(words[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(words[:2])}")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a vocabulary lists each word once")

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], min_freq: int = 5, max_size: int | None = None
    ) -> Vocabulary:
        """Words seen at least ``min_freq`` times; at most ``max_size`` entries (``<pad>``, ``<unk>`` too)."""
        if min_freq < 1:
            raise ConfigError(f"data.min_freq={min_freq}: must be an integer >= 1")
        if max_size is not None and max_size < 2:
            raise ConfigError(f"data.max_vocab_size={max_size}: must leave room for {PAD} and {UNK} (>= 2)")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        kept = sorted((word for word, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def encode(self, tokens: Iterable[str]) -> list[int]:
        get = self.index.get
        return [get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]


def encode_all(vocab: Vocabulary, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """All sequences as one flat ``int32`` id array plus ``offsets`` (``len + 1``): row ``i`` is
    ``ids[offsets[i]:offsets[i + 1]]``."""
    lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(token_lists))
    offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    get = vocab.index.get
    flat = np.fromiter(
        (get(token, UNK_ID) for tokens in token_lists for token in tokens),
        dtype=np.int32,
        count=int(offsets[-1]),
    )
    return flat, offsets
