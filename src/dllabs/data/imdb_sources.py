"""Where the IMDB reviews come from and how each source is read.

Sources, looked for in ``<data_dir>/imdb`` and then ``<data_dir>``: the Kaggle-style ``IMDB Dataset.csv``
(or ``.csv.gz``; columns ``review``, ``sentiment``), the original ``aclImdb/{train,test}/{pos,neg}/*.txt``
folders, or the original archive ``aclImdb_v1.tar.gz`` (read without unpacking; fetched with its MD5 by
:func:`download_archive`). Every reader returns the review texts and 0/1 labels (1 = positive).
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from dllabs.errors import ConfigError, CorruptDataError

URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
CSV_NAMES = ("IMDB Dataset.csv", "IMDB Dataset.csv.gz")
FOLDER = "aclImdb"
LABELS = {"negative": 0, "positive": 1, "neg": 0, "pos": 1}
SourceName = Literal["auto", "csv", "aclimdb", "archive"]  # data.source: where to look for the reviews
SOURCES = get_args(SourceName)
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


def check_source(source: str) -> str:
    """``source`` if it is one of :data:`SOURCES`, else a :class:`ConfigError` naming them."""
    if source not in SOURCES:
        raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}; got {source!r}")
    return source


def find_source(data_dir: str | Path, source: str = "auto") -> Source | None:
    """The first review source of the requested kind under ``data_dir/imdb`` or ``data_dir``, or ``None``."""
    wanted = ("csv", "aclimdb", "archive") if check_source(source) == "auto" else (source,)
    roots = [Path(data_dir) / "imdb", Path(data_dir)]
    for kind in wanted:
        names = {"csv": CSV_NAMES, "aclimdb": (FOLDER,), "archive": (ARCHIVE,)}[kind]
        for root in roots:
            for name in names:
                path = root / name
                if path.is_dir() if kind == "aclimdb" else path.is_file():
                    return Source(kind, path)
    return None


def labels_from(values: Sequence[Any], where: str) -> np.ndarray:
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
    return frame["review"].astype(str).tolist(), labels_from(frame["sentiment"].tolist(), str(path))


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


def download_archive(data_dir: Path) -> Source:
    """Fetch ``aclImdb_v1.tar.gz`` into ``data_dir/imdb`` (MD5-checked); a folder it created is removed on failure."""
    # imported only to download: torchvision took 23 s to import after torch on the shared 2-core machine
    from torchvision.datasets.utils import download_url

    root = Path(data_dir) / "imdb"
    existed = root.exists()
    try:
        download_url(URL, str(root), filename=ARCHIVE, md5=ARCHIVE_MD5)
    except BaseException:
        if not existed and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        raise
    return Source("archive", root / ARCHIVE)
