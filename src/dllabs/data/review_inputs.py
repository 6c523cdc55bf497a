"""What ``predict.py`` reads for the sentiment lab: one review given on the command line, a text file with one
review per line, or a CSV with a ``review`` column (and optionally ``sentiment``, for an accuracy report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dllabs.data.imdb_sources import labels_from
from dllabs.errors import ConfigError, CorruptDataError, DatasetNotFoundError


def read_review_inputs(input: str | None = None, text: str | None = None) -> tuple[list[str], np.ndarray | None]:
    """The reviews to predict and their 0/1 labels when the input has them (else ``None``)."""
    if (input is None) == (text is None):
        raise ConfigError('give exactly one of input=<file, one review per line> or text="a review"')
    if text is not None:
        return [text], None
    path = Path(input)
    if not path.is_file():
        raise DatasetNotFoundError(f"input file {path} does not exist; give a text file, one review per line")
    labels = None
    if path.name.endswith((".csv", ".csv.gz")):
        texts, labels = _read_csv(path)
    else:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise CorruptDataError(f"{path} holds no reviews (it is empty)")
    return texts, labels


def _read_csv(path: Path) -> tuple[list[str], np.ndarray | None]:
    import pandas as pd

    frame = pd.read_csv(path)
    if "review" not in frame.columns:
        raise CorruptDataError(f"{path} has no 'review' column (found {list(frame.columns)})")
    texts = frame["review"].fillna("").astype(str).tolist()
    labels = labels_from(frame["sentiment"].tolist(), str(path)) if "sentiment" in frame.columns else None
    return texts, labels
