"""Images to predict for a CIFAR model: a CIFAR batch file, a ``.npy`` array, or a folder of PNG/JPEG files.

- A python-version batch file (``test_batch`` or any file of that format, labels optional), or a
  ``cifar-10-batches-py`` folder (its ``test_batch`` is used). Read with the restricted unpickler: a user's
  file can never run code.
- A ``.npy`` file of ``N x 32 x 32 x 3`` uint8 images (HWC, as ``numpy`` and PIL store them); a single
  ``32 x 32 x 3`` image and channel-first ``N x 3 x 32 x 32`` arrays are accepted too.
- A folder of ``.png``/``.jpg``/``.jpeg`` files, taken in sorted name order; images of another size are
  resized to 32x32. When the images sit in sub-folders named after classes (``cat/001.png``), those names
  are the labels and an accuracy report follows.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from dllabs.data.image_dataset import ImageTensorDataset
from dllabs.data.prediction import PredictionData
from dllabs.data.safe_pickle import load_restricted
from dllabs.data.transforms import cifar_eval_transform
from dllabs.errors import CorruptDataError, DatasetNotFoundError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIZE = 32
UNKNOWN = -1


def load_cifar_batch(path: Path, trusted: bool, advice: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (N, 3, 32, 32) uint8 and int64 labels (or None) of a CIFAR python-version batch file.

    ``trusted`` (the official file, by its MD5) is read with ``pickle``; anything else with the restricted
    unpickler, so a user's file can never run code. A broken file is a :class:`CorruptDataError`:
    ``"<path> <advice> (<what failed>)"``.
    """
    try:
        if trusted:
            with open(path, "rb") as handle:
                entry = pickle.load(handle, encoding="latin1")
        else:
            entry = load_restricted(path)
        data = np.asarray(entry["data"], dtype=np.uint8)
        raw_labels = entry.get("labels", entry.get("fine_labels"))
        labels = None if raw_labels is None else np.asarray(raw_labels, dtype=np.int64)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
    ) as err:
        raise CorruptDataError(f"{path} {advice} ({type(err).__name__}: {err})") from err
    if data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE:
        raise CorruptDataError(f"{path}: a CIFAR batch holds data of shape (N, 3072), found {data.shape}")
    if labels is not None and labels.shape != (len(data),):
        raise CorruptDataError(f"{path}: {len(labels)} labels for {len(data)} images")
    return data.reshape(-1, 3, SIZE, SIZE), labels


def read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (N, 3, 32, 32) uint8 and labels (or None) of a user's CIFAR python-version batch file."""
    data, labels = load_cifar_batch(
        path,
        trusted=False,
        advice="is not a CIFAR python-version batch. Pass a batch file such as cifar-10-batches-py/test_batch, "
        "a .npy of N x 32 x 32 x 3 uint8 images, or a folder of PNG/JPEG images",
    )
    return torch.from_numpy(data.copy()), None if labels is None else torch.from_numpy(labels)


def read_npy(path: Path) -> torch.Tensor:
    """uint8 images (N, 3, 32, 32) from a ``.npy`` of N x 32 x 32 x 3 (or N x 3 x 32 x 32, or one image)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CorruptDataError(
            f"{path} is not a readable .npy array ({err}); save images with numpy.save"
        ) from err
    if array.ndim == 3:
        array = array[None]
    if array.dtype != np.uint8:
        raise CorruptDataError(
            f"{path} holds {array.dtype} values; expected uint8 pixels 0..255 "
            "(convert with (x * 255).round().astype(np.uint8) if they are floats in 0..1)"
        )
    if array.ndim == 4 and array.shape[1:] == (SIZE, SIZE, 3):
        array = array.transpose(0, 3, 1, 2)
    elif not (array.ndim == 4 and array.shape[1:] == (3, SIZE, SIZE)):
        raise CorruptDataError(f"{path} has shape {array.shape}; expected N x 32 x 32 x 3 uint8 images")
    return torch.from_numpy(np.ascontiguousarray(array))


def image_files(folder: Path) -> list[Path]:
    """PNG/JPEG files under ``folder`` (recursively), in sorted relative-path order."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def read_image(path: Path) -> tuple[torch.Tensor, bool]:
    """One RGB image as uint8 (3, 32, 32), and whether it had to be resized (antialiased) to get there."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB)
    except RuntimeError as err:
        raise CorruptDataError(f"{path} cannot be decoded as an image ({err}); remove or replace it") from err
    if tuple(image.shape[1:]) == (SIZE, SIZE):
        return image, False
    return TF.resize(image, [SIZE, SIZE], antialias=True), True


def read_folder(folder: Path, classes: Sequence[str]) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    """Images, relative file names, and labels when every image sits in a folder named after a class."""
    files = image_files(folder)
    if not files:
        raise DatasetNotFoundError(
            f"no .png/.jpg/.jpeg images in {folder}; pass a folder of images, a .npy or a batch file"
        )
    decoded = [read_image(path) for path in files]
    resized = sum(flag for _, flag in decoded)
    if resized:
        log.warning("%d of %d images in %s are not 32x32 and were resized", resized, len(files), folder)
    index = {name: i for i, name in enumerate(classes)}
    parents = [p.parent.relative_to(folder).as_posix() for p in files]
    labels = None
    if classes and all(parent in index for parent in parents):
        labels = torch.tensor([index[parent] for parent in parents])
    names = [p.relative_to(folder).as_posix() for p in files]
    return torch.stack([image for image, _ in decoded]), names, labels


def cifar_prediction_data(
    input: str | Path,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str] = (),
    batch_size: int = 100,
) -> PredictionData:
    """The images of ``input`` in input order, normalised like the CIFAR evaluation data, as PredictionData."""
    path = Path(input).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(
            f"input={path} does not exist; pass a CIFAR batch file (e.g. cifar-10-batches-py/test_batch), "
            "a .npy of N x 32 x 32 x 3 uint8 images, or a folder of PNG/JPEG images"
        )
    labels: torch.Tensor | None = None
    if path.is_dir() and (path / "test_batch").is_file() and not image_files(path):
        path = path / "test_batch"
    if path.is_dir():
        images, ids, labels = read_folder(path, classes)
        source = f"{len(ids)} image files"
    elif path.suffix.lower() == ".npy":
        images = read_npy(path)
        ids = [str(i) for i in range(len(images))]
        source = ".npy array"
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        images, ids = read_image(path)[0][None], [path.name]
        source = "one image file"
    else:
        images, labels = read_cifar_batch(path)
        ids = [str(i) for i in range(len(images))]
        source = "CIFAR batch (restricted unpickler)"
    log.info("predicting %d images from %s (%s)", len(images), path, source)
    targets = labels if labels is not None else torch.full((len(images),), UNKNOWN, dtype=torch.long)
    dataset = ImageTensorDataset(images, targets, cifar_eval_transform(mean, std))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    return PredictionData(loader=loader, ids=ids, labels=labels)
