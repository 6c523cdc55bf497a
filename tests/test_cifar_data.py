"""The project's CIFAR-10 reader, splits, transforms and trust paths."""

import logging
import shutil

import pytest
import torch

from dllabs.data import cifar10 as cifar
from dllabs.data.cifar10 import CIFAR10DataModule, CIFAR10Dataset
from tests.fixtures.cifar10 import PER_BATCH, TEST_SIZE


def _root(overrides):
    return overrides[0].split("=", 1)[1]


def test_dataset_reads_all_batches(cifar_fixture):
    train = CIFAR10Dataset(_root(cifar_fixture), train=True)
    test = CIFAR10Dataset(_root(cifar_fixture), train=False)
    assert len(train) == 5 * PER_BATCH and len(test) == TEST_SIZE
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and 0 <= label <= 9


def test_split_is_seeded_disjoint_and_normalised(cifar_fixture):
    dm = CIFAR10DataModule(_root(cifar_fixture), val_size=50, batch_size=40, num_workers=0, download=False)
    dm.setup("fit")
    train_images, val_images = dm.splits["train"][0], dm.splits["val"][0]
    assert len(train_images) == 5 * PER_BATCH - 50 and len(val_images) == 50
    flat_train = {bytes(x.numpy()) for x in train_images}
    assert not any(bytes(x.numpy()) in flat_train for x in val_images)
    again = CIFAR10DataModule(_root(cifar_fixture), val_size=50, num_workers=0, download=False)
    again.setup("fit")
    assert torch.equal(again.splits["val"][0], val_images)
    x, _ = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (50, 3, 32, 32)
    expected = (val_images[:50].float() / 255 - torch.tensor(cifar.MEAN)[:, None, None]) / torch.tensor(cifar.STD)[:, None, None]
    assert torch.allclose(x, expected, atol=1e-5)


def test_training_order_depends_only_on_seed_and_epoch(cifar_fixture):
    dm = CIFAR10DataModule(_root(cifar_fixture), val_size=50, batch_size=400, num_workers=0, download=False, seed=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = next(iter(loader))[1]
    assert torch.equal(first, next(iter(loader))[1])
    loader.sampler.set_epoch(1)
    assert not torch.equal(first, next(iter(loader))[1])


def test_crop_flip_changes_training_images_only(cifar_fixture):
    dm = CIFAR10DataModule(_root(cifar_fixture), val_size=50, batch_size=400, augment="crop_flip", num_workers=0,
                           download=False)
    dm.setup("fit")
    plain = CIFAR10DataModule(_root(cifar_fixture), val_size=50, batch_size=400, num_workers=0, download=False)
    plain.setup("fit")
    augmented_batch = next(iter(dm.train_dataloader()))[0]
    plain_batch = next(iter(plain.train_dataloader()))[0]
    assert augmented_batch.shape == plain_batch.shape
    assert not torch.allclose(augmented_batch, plain_batch)
    assert torch.equal(next(iter(dm.val_dataloader()))[0], next(iter(plain.val_dataloader()))[0])


def test_files_matching_the_official_md5_are_trusted(cifar_fixture, tmp_path, monkeypatch, caplog):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(f"{_root(cifar_fixture)}/cifar-10-batches-py", folder)
    monkeypatch.setitem(cifar.TEST_BATCHES, "test_batch", cifar.md5sum(folder / "test_batch"))
    with caplog.at_level(logging.INFO, logger="dllabs.data.cifar10"):
        CIFAR10Dataset(tmp_path, train=False)
    assert "test_batch via official md5 match" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dllabs.data.cifar10"):
        CIFAR10Dataset(tmp_path, train=True)
    assert "data_batch_1 via restricted unpickler" in caplog.text


def test_unknown_options_are_config_errors(cifar_fixture):
    from dllabs.errors import ConfigError
    from dllabs.signature_check import check_arguments

    # the choices live on the constructor's signature, checked before launch (not again by the constructor)
    with pytest.raises(ConfigError, match="crop_flip"):
        check_arguments({"data_dir": _root(cifar_fixture), "augment": "rotate"},
                        "dllabs.data.cifar10.CIFAR10DataModule", "data")
    with pytest.raises(ConfigError, match="val_size"):
        CIFAR10DataModule(_root(cifar_fixture), val_size=10**6, download=False).check_files()
