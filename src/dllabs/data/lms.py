"""Data of the LMS lab: ``d = w_true . [1, x1, x2] + noise``, generated from a seed or read from a user's file.

Generated (default): ``num_samples`` rows, ``x ~ N(0, 1)``, noise ``N(0, noise_std^2)``, ``w_true = [1, 1, -2]``.
From a file (``path``): ``.mat`` or ``.npz`` with arrays ``X`` (N x k) and ``D`` (N x 1), or ``.csv`` with a target
column (``target_column``, default ``d``) and the inputs in the other columns. The bias input (a column of ones)
is put first unless the file already starts with one (``add_bias``).

Every epoch is one batch holding the whole training set: the LMS task loops over its samples itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import lightning as L
import numpy as np
import torch
from annotated_types import Ge
from torch.utils.data import DataLoader, TensorDataset

from dllabs.config_types import AtLeast0, NonNegative
from dllabs.data.sampling import seeded_loader
from dllabs.errors import ConfigError, CorruptDataError, DatasetNotFoundError

log = logging.getLogger(__name__)

FILE_SUFFIXES = (".csv", ".npz", ".mat")
BIAS_MODES = ("auto", "true", "false")


def generate_lms_data(
    num_samples: int, true_weights: Sequence[float], noise_std: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``X = [1, x1, ..., xk]`` with ``x ~ N(0, 1)`` and ``d = X @ true_weights + N(0, noise_std^2)``."""
    if num_samples < 2:
        raise ConfigError(f"data.num_samples={num_samples}: need at least 2 samples")
    weights = np.asarray(true_weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size < 2:
        raise ConfigError(
            f"data.true_weights={list(true_weights)}: give the bias weight then one weight per input, "
            "e.g. [1.0, 1.0, -2.0]"
        )
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((num_samples, weights.size - 1))
    features = np.column_stack([np.ones(num_samples), inputs])
    targets = features @ weights + noise_std * rng.standard_normal(num_samples)
    return features, targets


def _read_csv(path: Path, target_column: str) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CorruptDataError(
            f"cannot read {path} as CSV ({' '.join(str(error).split())}); save it as plain comma-separated numbers"
        ) from error
    if target_column in frame.columns:
        return frame.drop(columns=[target_column]).to_numpy(), frame[target_column].to_numpy()
    if all(_is_number(name) for name in frame.columns):
        table = pd.read_csv(path, header=None).to_numpy()
        return table[:, :-1], table[:, -1]
    raise CorruptDataError(
        f"{path} has no target column {target_column!r} (columns: {list(frame.columns)}); name the target column "
        f"{target_column!r}, set data.target_column=<name>, or drop the header so the last column is the target"
    )


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (ValueError, OSError) as error:
            raise CorruptDataError(
                f"cannot read {path} as a numpy .npz archive of numeric arrays ({error})"
            ) from error
    from scipy.io import loadmat

    try:
        return {key: value for key, value in loadmat(path).items() if not key.startswith("__")}
    except NotImplementedError as error:
        raise CorruptDataError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; save it with save(..., '-v7')"
        ) from error
    except (ValueError, OSError) as error:
        raise CorruptDataError(f"cannot read {path} as a MATLAB .mat file ({error})") from error


def load_lms_file(path: Path, target_column: str = "d") -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(N, k)`` and targets ``(N,)`` from a ``.csv``, ``.npz`` or ``.mat`` file (see module docstring)."""
    if path.suffix not in FILE_SUFFIXES:
        raise ConfigError(
            f"data.path={path}: unsupported file type {path.suffix!r}; use one of {FILE_SUFFIXES}"
        )
    if path.suffix == ".csv":
        features, targets = _read_csv(path, target_column)
    else:
        arrays = _read_arrays(path)
        missing = [key for key in ("X", "D") if key not in arrays]
        if missing:
            raise CorruptDataError(
                f"{path} lacks variable(s) {missing} (found: {sorted(arrays)}); store the inputs as X (N x k) "
                "and the targets as D (N x 1)"
            )
        features, targets = arrays["X"], arrays["D"]
    return _validated(path, features, targets)


def _validated(path: Path, features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        features = np.asarray(features, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CorruptDataError(
            f"{path} holds non-numeric values ({error}); inputs and targets must be numbers"
        ) from error
    if features.ndim != 2 or features.shape[0] < 2:
        raise CorruptDataError(
            f"{path}: inputs X have shape {features.shape}; expected (N, k) with N >= 2 rows"
        )
    if (
        targets.size != features.shape[0]
        or (targets.ndim == 2 and 1 not in targets.shape)
        or targets.ndim > 2
    ):
        raise CorruptDataError(
            f"{path}: targets have shape {targets.shape} but inputs have {features.shape[0]} rows; "
            "expected one target per row (N x 1)"
        )
    bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1) | ~np.isfinite(targets.reshape(-1)))
    if bad_rows.size:
        raise CorruptDataError(
            f"{path}: {bad_rows.size} row(s) contain NaN or infinite values (first: row {bad_rows[0]}); "
            "remove or fill them"
        )
    return features, targets.reshape(-1)


def with_bias_column(features: np.ndarray, add_bias: str) -> np.ndarray:
    """Put a column of ones first: always (``true``), never (``false``), or unless already there (``auto``)."""
    if add_bias not in BIAS_MODES:
        raise ConfigError(f"data.add_bias={add_bias!r}; choose one of {BIAS_MODES}")
    has_bias = bool(np.all(features[:, 0] == 1.0))
    if add_bias == "false" or (add_bias == "auto" and has_bias):
        return features
    return np.column_stack([np.ones(features.shape[0]), features])


class LMSDataModule(L.LightningDataModule):
    """The LMS lab's data as one whole-dataset batch per epoch.

    ``val_size=0`` (default) validates and tests on the training data itself, as the lab does; ``val_size=n``
    holds out ``n`` random rows (drawn from ``seed``) for validation and test. ``shuffle`` presents the training
    samples in a new order (from ``seed`` and the epoch) each epoch instead of file order.
    """

    def __init__(
        self,
        data_dir: str = ".",
        path: str | None = None,
        num_samples: Annotated[int, Ge(2)] = 100,
        noise_std: NonNegative = 0.01,
        true_weights: Sequence[float] = (1.0, 1.0, -2.0),
        seed: int = 0,
        val_size: AtLeast0 = 0,
        shuffle: bool = False,
        add_bias: bool | Literal["auto"] = "auto",
        target_column: str = "d",
        num_workers: AtLeast0 = 0,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.path = path
        self.num_samples = num_samples
        self.noise_std = noise_std
        self.true_weights = list(true_weights)
        self.seed = seed
        self.val_size = val_size
        self.shuffle = shuffle
        self.add_bias = str(add_bias).lower()
        self.target_column = target_column
        self.num_workers = num_workers
        self.features: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    @property
    def num_features(self) -> int:
        """Inputs per sample including the bias column (available after ``setup``)."""
        if self.features is None:
            raise RuntimeError("LMSDataModule.setup() has not run yet")
        return self.features.shape[1]

    def source(self) -> str:
        """Where the data came from, for logs and results."""
        if self.path is None:
            return f"generated (seed {self.seed}, {self.num_samples} samples, noise std {self.noise_std})"
        return str(self.resolved_path())

    def resolved_path(self) -> Path:
        """``path`` as given if it exists (absolute or relative to the working directory), else under ``data_dir``."""
        assert self.path is not None
        given = Path(self.path).expanduser()
        candidates = [given] if given.is_absolute() else [given, self.data_dir / given]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
            if candidate.is_dir():
                raise DatasetNotFoundError(f"data.path={self.path}: {candidate} is a folder; give a .csv/.npz/.mat file")
        raise DatasetNotFoundError(
            f"LMS data file not found: tried {', '.join(str(c) for c in candidates)}; set data.path to an existing "
            f".csv/.npz/.mat file, or leave data.path=null to generate the dataset from data.seed"
        )

    def check_files(self) -> None:
        """Read and validate the file ``path`` names (the lab's files are small), before a run folder is made."""
        if self.path is not None:
            with_bias_column(load_lms_file(self.resolved_path(), self.target_column)[0], self.add_bias)

    def setup(self, stage: str | None = None) -> None:
        if self.features is not None:
            return
        if self.path is None:
            features, targets = generate_lms_data(
                self.num_samples, self.true_weights, self.noise_std, self.seed
            )
        else:
            features, targets = load_lms_file(self.resolved_path(), self.target_column)
            features = with_bias_column(features, self.add_bias)
        self.features, self.targets = features, targets
        log.info("LMS data: %s, %d samples x %d inputs (bias first)", self.source(), *features.shape)
        self.train_set, self.val_set = self._split(features, targets)

    def _split(self, features: np.ndarray, targets: np.ndarray) -> tuple[TensorDataset, TensorDataset]:
        whole = TensorDataset(
            torch.tensor(features, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)
        )
        count = len(whole)
        if self.val_size == 0:
            return whole, whole
        if not 0 < self.val_size < count - 1:
            raise ConfigError(
                f"data.val_size={self.val_size} with {count} samples; use 0 (validate on the training data) "
                f"or a count between 1 and {count - 2}"
            )
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed))
        val_rows, train_rows = order[: self.val_size], order[self.val_size :]
        return TensorDataset(*whole[train_rows]), TensorDataset(*whole[val_rows])

    def _whole_batch_loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        return seeded_loader(dataset, self.seed, shuffle, batch_size=len(dataset), num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return self._whole_batch_loader(self.train_set, self.shuffle)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return self._whole_batch_loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
