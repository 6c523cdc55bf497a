"""IMDB preprocessing speed: read 50k reviews, tokenise, build the vocabulary (train split), encode, cache.

The baseline is the usual hand-written lab code (stop words looked up in a Python list, one review at a time),
timed on a slice and scaled to the whole corpus. Target: vocabulary + encoding of 50k reviews well under 30 s
on 2 cores.

    DLLABS_DATA_DIR=../shared/data python benchmarks/bench_imdb_preprocess.py [--quick] [--out FILE]

Skips (exit 0, with a message) when no IMDB copy is found under $DLLABS_DATA_DIR (default ../shared/data).
Results: benchmarks/results/imdb_preprocess_cpu.json.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections import Counter

from common import ROOT, compare, main_for, row  # benchmarks/ is on sys.path when run as a script

from dllabs.data.corpus import build_corpus
from dllabs.data.imdb import IMDBDataModule
from dllabs.data.imdb_sources import find_source, read_reviews
from dllabs.data.text import Vocabulary, encode_all, english_stopwords, tokenize_all

NAME = "imdb_preprocess"


def data_dir() -> str:
    return os.environ.get("DLLABS_DATA_DIR", str(ROOT.parent / "shared" / "data"))


def naive_pipeline(texts: list[str], train_count: int, min_freq: int = 5) -> float:
    """The common lab code: regex per review, stop words in a list, vocab dict, encode per token."""
    stopwords = sorted(english_stopwords())
    started = time.perf_counter()
    token_lists = []
    for text in texts:
        text = re.sub(r"[^\w\s]", "", re.sub(r"<br />", " ", text.lower()))
        token_lists.append([word for word in text.split() if word not in stopwords])
    counts = Counter(word for tokens in token_lists[:train_count] for word in tokens)
    vocab = {"<pad>": 0, "<unk>": 1}
    for word, count in counts.most_common():
        if count >= min_freq:
            vocab[word] = len(vocab)
    [[vocab.get(word, 1) for word in tokens] for tokens in token_lists]
    return time.perf_counter() - started


def timed(function, *args) -> tuple[object, float]:
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def run(quick: bool) -> list[dict]:
    source = find_source(data_dir())
    (texts, labels), read_s = timed(read_reviews, source)
    n, train_count = len(texts), int(0.7 * len(texts))
    tokens, tokenise_s = timed(tokenize_all, texts)
    vocab, vocab_s = timed(lambda: Vocabulary.build(tokens[:train_count], min_freq=5, max_size=40_000))
    _, encode_s = timed(encode_all, vocab, tokens)
    _, pipeline_s = timed(build_corpus, texts, labels, (0.7, 0.1, 0.2), 12, 5, 40_000)
    with tempfile.TemporaryDirectory() as cache:
        _, cold_s = timed(IMDBDataModule(data_dir(), cache_dir=cache, download=False).setup)
        warm = IMDBDataModule(data_dir(), cache_dir=cache, download=False)
        _, warm_s = timed(warm.setup)
        if not warm.cache_hit:
            raise RuntimeError("the second setup should have loaded the cache")
    slice_size = min(1000 if quick else 3000, n)
    baseline_s = naive_pipeline(texts[:slice_size], int(0.7 * slice_size)) * n / slice_size

    note = f"{n} reviews, vocabulary {len(warm.vocab)}"
    rows = [
        row(NAME, "read source", read_s, "s", note=f"{source.kind}: {source.path.name}"),
        row(NAME, "tokenise all reviews", tokenise_s, "s"),
        row(NAME, "vocabulary (train split)", vocab_s, "s"),
        row(NAME, "encode all reviews", encode_s, "s"),
        row(NAME, "split + vocab + encode", pipeline_s, "s", note=note),
        row(NAME, "datamodule setup, cold", cold_s, "s", note="read + build + write cache"),
        row(NAME, "datamodule setup, cache hit", warm_s, "s"),
        row(NAME, "baseline lab code", baseline_s, "s", note=f"list stop words; {slice_size} reviews scaled"),
    ]
    compare(rows, "split + vocab + encode", "baseline lab code", better="lower")
    compare(rows, "datamodule setup, cache hit", "datamodule setup, cold", better="lower")
    return rows


def main(argv: list[str] | None = None) -> int:
    if find_source(data_dir()) is None:
        print(f"{NAME}: skipped, no IMDB copy under {data_dir()} (set DLLABS_DATA_DIR)")
        return 0
    return main_for(NAME, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
