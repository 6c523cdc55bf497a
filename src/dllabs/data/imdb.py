"""IMDB movie reviews (50k, positive/negative) for the LSTM sentiment lab.

Sources, looked for in ``<data_dir>/imdb`` and then ``<data_dir>``: the Kaggle-style ``IMDB Dataset.csv``
(or ``.csv.gz``; columns ``review``, ``sentiment``), the original ``aclImdb/{train,test}/{pos,neg}/*.txt``
folders, or the original archive ``aclImdb_v1.tar.gz`` (read without unpacking; downloaded with its MD5 when
``download`` is on and the machine is online). All 50k reviews are pooled and split 7:1:2 with ``split_seed``;
``seed`` only orders the training batches (a new order each epoch, reproducible on resume).

The vocabulary comes from the training split only (see ``dllabs.data.text``). The processed corpus
(vocabulary, token ids, labels, split) is cached as a plain ``.npz`` keyed by the source file and every
setting that changes it, so a second run does not re-tokenise; ``max_length`` is applied when items are read
and is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, random_split

from dllabs.data.prediction import PredictionData
from dllabs.data.sampling import seeded_loader
from dllabs.data.text import PAD_ID, UNK_ID, Vocabulary, encode_all, english_stopwords, tokenize_all
from dllabs.errors import CheckpointMismatchError, ConfigError, CorruptDataError, DatasetNotFoundError

log = logging.getLogger(__name__)

URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
CSV_NAMES = ("IMDB Dataset.csv", "IMDB Dataset.csv.gz")
FOLDER = "aclImdb"
CLASSES = ("negative", "positive")
LABELS = {"negative": 0, "positive": 1, "neg": 0, "pos": 1}
SOURCES = ("auto", "csv", "aclimdb", "archive")
CACHE_FORMAT = 1
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)$")


@dataclass(frozen=True)
class Source:
    """Where the reviews come from: ``kind`` is ``csv``, ``aclimdb`` (folder) or ``archive`` (.tar.gz)."""

    kind: str
    path: Path

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the source's content cheaply: path, size and modification times."""
        if self.kind == "aclimdb":
            folders = [self.path / split / label for split in ("train", "test") for label in ("pos", "neg")]
            stamp = [[f.stat().st_mtime_ns, sum(1 for _ in os.scandir(f))] for f in folders if f.is_dir()]
            return {"kind": self.kind, "path": str(self.path.resolve()), "folders": stamp}
        stat = self.path.stat()
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "size": stat.st_size,
            "mtime": stat.st_mtime_ns,
        }


def find_source(data_dir: str | Path, source: str = "auto") -> Source | None:
    """The first review source of the requested kind under ``data_dir/imdb`` or ``data_dir``, or ``None``."""
    if source not in SOURCES:
        raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}; got {source!r}")
    wanted = ("csv", "aclimdb", "archive") if source == "auto" else (source,)
    roots = [Path(data_dir) / "imdb", Path(data_dir)]
    for kind in wanted:
        names = {"csv": CSV_NAMES, "aclimdb": (FOLDER,), "archive": (ARCHIVE,)}[kind]
        for root in roots:
            for name in names:
                path = root / name
                if path.is_dir() if kind == "aclimdb" else path.is_file():
                    return Source(kind, path)
    return None


def _labels_from(values: Sequence[Any], where: str) -> np.ndarray:
    normalised = [str(value).strip().lower() for value in values]
    unknown = sorted({value for value in normalised if value not in LABELS})
    if unknown:
        raise CorruptDataError(
            f"{where}: unknown sentiment labels {unknown[:5]}; expected 'positive' or 'negative'. "
            "Fix or remove those rows."
        )
    return np.array([LABELS[value] for value in normalised], dtype=np.int8)


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Reviews and 0/1 labels from a CSV with ``review`` and ``sentiment`` columns (``.gz`` is fine)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, EOFError) as error:
        raise CorruptDataError(
            f"cannot read {path} as CSV ({error}); replace it with a good copy."
        ) from error
    missing = [column for column in ("review", "sentiment") if column not in frame.columns]
    if missing:
        raise CorruptDataError(
            f"{path} lacks column(s) {missing}; found {list(frame.columns)}. The IMDB CSV needs a 'review' "
            "column (the text) and a 'sentiment' column (positive/negative)."
        )
    empty = frame.index[frame["review"].isna()].tolist()
    if empty:
        raise CorruptDataError(f"{path}: rows {empty[:5]} have no review text; fix or remove them.")
    return frame["review"].astype(str).tolist(), _labels_from(frame["sentiment"].tolist(), str(path))


def read_folders(root: Path) -> tuple[list[str], np.ndarray]:
    """Reviews from ``aclImdb/{train,test}/{pos,neg}/*.txt`` in a fixed order (split, label, file name)."""
    texts: list[str] = []
    labels: list[int] = []
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = root / split / label
            if not folder.is_dir():
                raise CorruptDataError(
                    f"{root} is missing {split}/{label}/; an aclImdb folder holds train/pos, train/neg, "
                    "test/pos and test/neg. Unpack aclImdb_v1.tar.gz again."
                )
            for file in sorted(folder.glob("*.txt")):
                texts.append(file.read_text(encoding="utf-8"))
                labels.append(LABELS[label])
    return texts, np.array(labels, dtype=np.int8)


def read_archive(path: Path) -> tuple[list[str], np.ndarray]:
    """Reviews straight from ``aclImdb_v1.tar.gz`` (no unpacking), in the same order as ``read_folders``."""
    found: dict[tuple[str, str, str], str] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _MEMBER.match(member.name)
                if match and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        found[match.groups()] = handle.read().decode("utf-8")
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as error:
        raise CorruptDataError(
            f"{path} is not a readable aclImdb archive ({error}); delete it and fetch it again."
        )
    if not found:
        raise CorruptDataError(f"{path} holds no aclImdb/{{train,test}}/{{pos,neg}}/*.txt reviews.")
    order = {("train", "pos"): 0, ("train", "neg"): 1, ("test", "pos"): 2, ("test", "neg"): 3}
    keys = sorted(found, key=lambda key: (order[key[:2]], key[2]))
    return [found[key] for key in keys], np.array([LABELS[key[1]] for key in keys], dtype=np.int8)


def read_reviews(source: Source) -> tuple[list[str], np.ndarray]:
    reader = {"csv": read_csv, "aclimdb": read_folders, "archive": read_archive}[source.kind]
    return reader(source.path)


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
            log.warning("ignoring unreadable IMDB cache %s (%s); rebuilding it", path, error)
            return None
        if len(corpus.offsets) != len(corpus.labels) + 1 or corpus.offsets[-1] != len(corpus.ids):
            log.warning("ignoring inconsistent IMDB cache %s; rebuilding it", path)
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
        batch_size: int = 96,
        eval_batch_size: int | None = None,
        max_length: int | None = 256,
        min_freq: int = 5,
        max_vocab_size: int = 40_000,
        split: Sequence[float] = (0.7, 0.1, 0.2),
        split_seed: int = 12,
        seed: int = 0,
        source: str = "auto",
        download: bool = True,
        cache_dir: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        fractions = [float(f) for f in split]
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ConfigError(
                f"data.split needs three positive fractions (train, val, test) summing to 1; got {split}"
            )
        if max_length is not None and max_length < 1:
            raise ConfigError(f"data.max_length must be >= 1 (or null for no truncation); got {max_length}")
        if min_freq < 1 or max_vocab_size < 3:
            raise ConfigError(
                f"data.min_freq must be >= 1 and data.max_vocab_size >= 3; got {min_freq}, {max_vocab_size}"
            )
        if source not in SOURCES:
            raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}; got {source!r}")
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
                return self._download()
            except (OSError, RuntimeError, ValueError) as error:  # network, disk, checksum: same advice
                reason = f"downloading {URL} failed: {error}"
        where = f"{self.data_dir / 'imdb'} or {self.data_dir}"
        raise DatasetNotFoundError(
            f"IMDB reviews not found in {where} ({reason}). Put one of these there: 'IMDB Dataset.csv' or "
            f"'IMDB Dataset.csv.gz' (columns review, sentiment), the unpacked '{FOLDER}/' folder, or "
            f"'{ARCHIVE}' from {URL}; or point data.data_dir (DLLABS_DATA_DIR) at the folder that holds it."
        )

    def _download(self) -> Source:
        from torchvision.datasets.utils import download_url

        root = self.data_dir / "imdb"
        existed = root.exists()
        try:
            download_url(URL, str(root), filename=ARCHIVE, md5=ARCHIVE_MD5)
        except BaseException:
            if not existed and root.is_dir() and not any(root.iterdir()):
                root.rmdir()
            raise
        return Source("archive", root / ARCHIVE)

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
        if (input is None) == (text is None):
            raise ConfigError('give exactly one of input=<file, one review per line> or text="a review"')
        labels = None
        if text is not None:
            texts = [text]
        else:
            path = Path(input)
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"input file {path} does not exist; give a text file, one review per line"
                )
            if path.name.endswith((".csv", ".csv.gz")):
                texts, labels = self._read_prediction_csv(path)
            else:
                texts = [
                    line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
                ]
            if not texts:
                raise CorruptDataError(f"{path} holds no reviews (it is empty)")
        dataset = self.encode_texts(texts, labels)
        loader = DataLoader(dataset, batch_size=self.eval_batch_size, collate_fn=pad_collate)
        return PredictionData(
            loader=loader,
            ids=[str(i) for i in range(len(texts))],
            labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
            texts=list(texts),
        )

    @staticmethod
    def _read_prediction_csv(path: Path) -> tuple[list[str], np.ndarray | None]:
        import pandas as pd

        frame = pd.read_csv(path)
        if "review" not in frame.columns:
            raise CorruptDataError(f"{path} has no 'review' column (found {list(frame.columns)})")
        texts = frame["review"].fillna("").astype(str).tolist()
        labels = (
            _labels_from(frame["sentiment"].tolist(), str(path)) if "sentiment" in frame.columns else None
        )
        return texts, labels
