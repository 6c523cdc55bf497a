"""IMDB preprocessing speed: read 50k reviews, tokenise, build the vocabulary (train split), encode, cache.

Compared with the usual hand-written lab code (stop words looked up in a Python list, one review at a time),
timed on a slice and scaled to 50k. Target: vocabulary + encoding of 50k reviews well under 30 s on 2 cores.

    DLLABS_DATA_DIR=../shared/data python benchmarks/bench_imdb_preprocess.py
    python benchmarks/bench_imdb_preprocess.py --data-dir /data --baseline-reviews 2000

Skips (exit 0, with a message) when no IMDB copy is found. Results: benchmarks/results/imdb_preprocess.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from dllabs.data.imdb import IMDBDataModule, build_corpus, find_source, read_reviews
from dllabs.data.text import Vocabulary, encode_all, english_stopwords, tokenize_all

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "imdb_preprocess.json"


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


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_dir = os.environ.get("DLLABS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    parser.add_argument(
        "--data-dir", default=default_dir, help="folder holding imdb/ (default: $DLLABS_DATA_DIR)"
    )
    parser.add_argument(
        "--baseline-reviews", type=int, default=3000, help="slice the slow baseline is timed on"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    source = find_source(args.data_dir)
    if source is None:
        print(f"skipped: no IMDB copy under {args.data_dir} (set DLLABS_DATA_DIR or --data-dir)")
        return 0
    torch.set_num_threads(min(2, torch.get_num_threads()))

    (texts, labels), read_s = timed(read_reviews, source)
    n = len(texts)
    train_count = int(0.7 * n)
    tokens, tokenise_s = timed(tokenize_all, texts)
    vocab, vocab_s = timed(lambda: Vocabulary.build(tokens[:train_count], min_freq=5, max_size=40_000))
    _, encode_s = timed(encode_all, vocab, tokens)
    _, pipeline_s = timed(build_corpus, texts, labels, (0.7, 0.1, 0.2), 12, 5, 40_000)

    with tempfile.TemporaryDirectory() as cache:
        first = IMDBDataModule(args.data_dir, cache_dir=cache, download=False)
        _, cold_s = timed(first.setup)
        second = IMDBDataModule(args.data_dir, cache_dir=cache, download=False)
        _, warm_s = timed(second.setup)
        assert second.cache_hit, "the second setup should have loaded the cache"

    slice_size = min(args.baseline_reviews, n)
    baseline_slice_s = naive_pipeline(texts[:slice_size], int(0.7 * slice_size))
    baseline_s = baseline_slice_s * n / slice_size

    rows = [
        ("read source", read_s),
        ("tokenise all reviews", tokenise_s),
        ("vocabulary (train split)", vocab_s),
        ("encode all reviews", encode_s),
        ("split + vocab + encode (build_corpus)", pipeline_s),
        ("datamodule setup, cold (read + build + write cache)", cold_s),
        ("datamodule setup, cache hit", warm_s),
        (f"baseline lab code (list stop words; {slice_size} reviews scaled to {n})", baseline_s),
    ]
    width = max(len(name) for name, _ in rows)
    print(
        f"IMDB preprocessing: {n} reviews from {source.path} ({source.kind}), "
        f"vocabulary {len(second.vocab)} words"
    )
    print(f"{'stage':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    print(f"speed-up of build_corpus over the baseline: {baseline_s / pipeline_s:.1f}x")

    result = {
        "benchmark": "imdb_preprocess",
        "source": str(source.path),
        "reviews": n,
        "vocab_size": len(second.vocab),
        "seconds": {name: round(seconds, 3) for name, seconds in rows},
        "speedup_vs_baseline": round(baseline_s / pipeline_s, 2),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
