"""CIFAR-10 from the python-version batches: the project's own reader, Dataset and LightningDataModule.

Batch files are trusted (plain unpickling) only when their md5 matches the official release; any other file
(a rebuilt copy, a user's file) goes through a restricted unpickler that cannot run code. Which path each file
took is logged.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
import urllib.error
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from dllabs.config_types import AtLeast0, AtLeast1
from dllabs.data.cifar_inputs import cifar_prediction_data, load_cifar_batch
from dllabs.data.image_dataset import ImageTensorDataset
from dllabs.data.prediction import PredictionData
from dllabs.data.sampling import seeded_loader
from dllabs.data.transforms import cifar_eval_transform, cifar_train_transform
from dllabs.errors import ConfigError, CorruptDataError, DatasetNotFoundError

log = logging.getLogger(__name__)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
TEST_BATCHES = {"test_batch": "40351d587109b95175f43aff81a1287e"}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


TRAIN_IMAGES = 50000  # in the official training batches (data_batch_1..5)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_message(root: Path) -> str:
    return (
        f"CIFAR-10 not found under {root} and it could not be downloaded. Put the python-version archive "
        f"'{ARCHIVE}' (from {URL}) or its extracted '{FOLDER}/' folder (data_batch_1..5, test_batch) in {root}, "
        "or point data.data_dir (or the DLLABS_DATA_DIR environment variable) at the folder that holds it."
    )


def _extract(archive: Path, root: Path) -> None:
    """Extract the archive via a staging folder, so a corrupt one leaves nothing half-written behind."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        if (staging / FOLDER).is_dir():
            (staging / FOLDER).rename(root / FOLDER)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise CorruptDataError(
            f"{archive} is not a readable CIFAR-10 archive ({err}). Delete it and download it again from {URL}."
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def locate(root: str | Path, download: bool = True) -> Path:
    """The ``cifar-10-batches-py`` folder under ``root``: found, extracted from the archive, or downloaded."""
    root = Path(root).expanduser()
    folder = root / FOLDER
    if folder.is_dir():
        return folder
    if root.name == FOLDER and root.is_dir():
        return root
    archive = root / ARCHIVE
    if not archive.exists() and download:
        from torchvision.datasets.utils import download_url

        try:
            download_url(URL, str(root), ARCHIVE, md5=ARCHIVE_MD5)
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            log.warning("download of %s failed: %s", URL, err)
    if not archive.exists():
        raise DatasetNotFoundError(_missing_message(root))
    if md5sum(archive) != ARCHIVE_MD5:
        log.warning("%s does not match the official md5; its batches will be read with the restricted reader", archive)
    _extract(archive, root)
    if not folder.is_dir():
        raise CorruptDataError(f"{archive} did not contain '{FOLDER}/'. Delete it and download it again from {URL}.")
    return folder


def read_batch(path: Path, official_md5: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file, read safely."""
    if not path.exists():
        raise DatasetNotFoundError(f"{path} is missing: the CIFAR-10 folder {path.parent} is incomplete. {URL}")
    trusted = md5sum(path) == official_md5
    log.info("reading %s via %s", path.name, "official md5 match" if trusted else "restricted unpickler")
    data, labels = load_cifar_batch(
        path, trusted, f"is not a valid CIFAR-10 batch; replace it with the file from the official archive ({URL})"
    )
    if labels is None:
        raise CorruptDataError(f"{path}: a CIFAR-10 training or test batch needs labels; it has none. {URL}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CorruptDataError(f"{path}: labels outside 0..9")
    return data, labels


def load_split(root: str | Path, train: bool, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All images (uint8, NCHW) and labels of the training (50k) or test (10k) split."""
    folder = locate(root, download)
    batches = TRAIN_BATCHES if train else TEST_BATCHES
    parts = [read_batch(folder / name, md5) for name, md5 in batches.items()]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return images, labels


class CIFAR10Dataset(ImageTensorDataset):
    """CIFAR-10 read from ``root`` (the batches folder, the archive, or a folder holding either)."""

    def __init__(self, root: str | Path, train: bool = True, transform=None, download: bool = False) -> None:
        images, labels = load_split(root, train, download)
        super().__init__(images, labels, transform)


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 with a seeded train/validation split of the 50k training images and the 10k test set.

    ``augment``: ``none`` or ``crop_flip`` (random crop 32 with padding 4 + horizontal flip, training only).
    ``loader``: ``standard`` (DataLoader with per-image torchvision v2 transforms) or ``device`` (whole uint8
    dataset on the accelerator, augmented per batch there).
    """

    dims = (3, 32, 32)
    num_classes = 10
    classes = CLASSES

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: AtLeast1 = 128,
        eval_batch_size: AtLeast1 = 100,
        val_size: AtLeast1 = 5000,
        train_subset: AtLeast1 | None = None,
        split_seed: int = 0,
        augment: Literal["none", "crop_flip"] = "none",
        loader: Literal["standard", "device"] = "standard",
        device: str = "auto",
        channels_last: bool = False,
        num_workers: AtLeast0 = 2,
        pin_memory: bool = True,
        download: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.train_subset = train_subset
        self.split_seed = split_seed
        self.augment = augment
        self.loader = loader
        self.device = device
        self.channels_last = channels_last
        self.num_workers = num_workers
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.download = download
        self.seed = seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def check_files(self) -> None:
        """What can be checked before a run folder is made without reading the batches: ``val_size`` leaves
        training images (the official training set has :data:`TRAIN_IMAGES`)."""
        if self.val_size >= TRAIN_IMAGES:
            raise ConfigError(
                f"data.val_size={self.val_size}: CIFAR-10 has {TRAIN_IMAGES} training images; hold out 1 to "
                f"{TRAIN_IMAGES - 1} of them"
            )

    def prepare_data(self) -> None:
        locate(self.data_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "train" not in self.splits:
            images, labels = load_split(self.data_dir, train=True, download=self.download)
            if not 0 < self.val_size < len(labels):
                raise ConfigError(f"data.val_size={self.val_size} must be between 1 and {len(labels) - 1}")
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
            val_idx, train_idx = order[: self.val_size], order[self.val_size :]
            if self.train_subset:
                train_idx = train_idx[: self.train_subset]
            self.splits["train"] = (images[train_idx], labels[train_idx])
            self.splits["val"] = (images[val_idx], labels[val_idx])
        if stage in (None, "test") and "test" not in self.splits:
            self.splits["test"] = load_split(self.data_dir, train=False, download=self.download)

    def _loader(self, split: str, train: bool) -> DataLoader:
        images, labels = self.splits[split]
        batch_size = self.batch_size if train else self.eval_batch_size
        if self.loader == "device":
            from dllabs.data.device_loader import DeviceLoader

            return DeviceLoader(
                images,
                labels,
                batch_size=batch_size,
                shuffle=train,
                augment=train and self.augment == "crop_flip",
                mean=MEAN,
                std=STD,
                device=self.device,
                seed=self.seed,
                drop_last=False,
                channels_last=self.channels_last,
            )
        transform = cifar_train_transform(self.augment, MEAN, STD) if train else cifar_eval_transform(MEAN, STD)
        dataset = ImageTensorDataset(images, labels, transform)
        return seeded_loader(
            dataset,
            self.seed,
            shuffle=train,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def prediction_data(self, input: str | None = None, text: str | None = None) -> PredictionData:
        """Images to predict for ``predict.py``: a CIFAR batch file, an N x 32 x 32 x 3 uint8 .npy, or a folder."""
        if text is not None or input is None:
            raise ConfigError("CIFAR-10 predictions need input=<batch file | .npy | image folder>, not text=")
        return cifar_prediction_data(input, MEAN, STD, classes=CLASSES, batch_size=self.eval_batch_size)
