"""DeviceLoader: same augmentation as torchvision v2, deterministic per epoch, exact under Lightning resume."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from dllabs.data.device_loader import DeviceLoader, crop_flip
from dllabs.errors import ConfigError
from tests.conftest import run_train

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_loader(count=50, batch_size=8, shuffle=True, augment=True, seed=0, drop_last=False, **kwargs):
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(1, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count)
    return DeviceLoader(
        images, labels, batch_size, shuffle, augment, MEAN, STD, "cpu", seed, drop_last, **kwargs
    )


def reference(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """torchvision v2: RandomCrop(32, padding=4) with these offsets, flip, ToDtype(scale=True), Normalize."""
    out = TF.crop(TF.pad(image, [4]), top, left, 32, 32)
    if flip:
        out = TF.horizontal_flip(out)
    return TF.normalize(TF.to_dtype(out, torch.float32, scale=True), list(MEAN), list(STD))


def test_crop_flip_matches_torchvision_for_every_offset():
    images = torch.randint(0, 256, (162, 3, 32, 32), dtype=torch.uint8)
    grid = torch.arange(9)
    tops, lefts = grid.repeat_interleave(9).repeat(2), grid.repeat(9).repeat(2)
    flips = torch.arange(162) >= 81
    out = crop_flip(images, tops, lefts, flips, padding=4)
    for i in range(162):
        expected = TF.crop(TF.pad(images[i], [4]), int(tops[i]), int(lefts[i]), 32, 32)
        if flips[i]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(out[i], expected), i


def test_flip_is_an_exact_mirror_and_centre_crop_is_identity():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    centre = torch.full((4,), 4)
    assert torch.equal(crop_flip(images, centre, centre, torch.zeros(4, dtype=torch.bool), 4), images)
    assert torch.equal(crop_flip(images, centre, centre, torch.ones(4, dtype=torch.bool), 4), images.flip(-1))


def test_crops_stay_inside_the_padded_image():
    images = torch.full((2, 3, 32, 32), 200, dtype=torch.uint8)
    out = crop_flip(images, torch.tensor([0, 8]), torch.tensor([8, 0]), torch.tensor([False, False]), 4)
    top_right = torch.zeros(32, 32, dtype=torch.bool)
    top_right[4:, :-4] = True
    bottom_left = torch.zeros(32, 32, dtype=torch.bool)
    bottom_left[:-4, 4:] = True
    for crop, image_part in ((out[0], top_right), (out[1], bottom_left)):
        assert (crop[:, image_part] == 200).all()
        assert (crop[:, ~image_part] == 0).all()


def test_batches_equal_the_torchvision_pipeline_with_the_same_draws():
    loader = make_loader(count=20, batch_size=7)
    order, tops, lefts, flips = loader.epoch_plan(0)
    x = torch.cat([batch[0] for batch in loader])
    for position, index in enumerate(order.tolist()):
        expected = reference(
            loader.images[index], int(tops[position]), int(lefts[position]), bool(flips[position])
        )
        torch.testing.assert_close(x[position], expected, rtol=0, atol=1e-6)


def test_draws_cover_all_offsets_and_flip_half_the_time():
    _, tops, lefts, flips = make_loader(count=5000).epoch_plan(3)
    assert set(tops.tolist()) == set(range(9)) == set(lefts.tolist())
    assert 0.45 < flips.float().mean().item() < 0.55


def test_shapes_lengths_and_every_sample_once():
    loader = make_loader(count=50, batch_size=8)
    batches = list(loader)
    assert len(loader) == len(batches) == 7
    assert batches[0][0].shape == (8, 3, 32, 32) and batches[0][0].dtype == torch.float32
    assert batches[-1][0].shape[0] == 2
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(50))
    assert len(make_loader(count=50, batch_size=8, drop_last=True)) == 6
    assert [y.tolist() for _, y in make_loader(count=10, batch_size=5, shuffle=False)] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
    ]


def test_channels_last_and_plain_normalisation():
    loader = make_loader(count=4, batch_size=4, shuffle=False, augment=False, channels_last=True)
    x, _ = next(iter(loader))
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x[1], reference(loader.images[1], 4, 4, False), rtol=0, atol=1e-6)


def labels_of(loader):
    return [y.tolist() for _, y in loader]


def test_deterministic_per_epoch():
    first, second = make_loader(seed=5), make_loader(seed=5)
    epoch0, epoch1 = labels_of(first), labels_of(first)
    assert epoch0 != epoch1
    second.sampler.set_epoch(1)
    assert labels_of(second) == epoch1
    second.sampler.set_epoch(0)
    assert [x.sum().item() for x, _ in second] == [x.sum().item() for x, _ in make_loader(seed=5)]
    assert labels_of(make_loader(seed=6)) != epoch0


def test_rejects_wrong_inputs():
    with pytest.raises(ConfigError, match="uint8"):
        DeviceLoader(torch.zeros(2, 3, 32, 32), torch.zeros(2), 2, True, True, MEAN, STD, "cpu", 0, False)
    with pytest.raises(ConfigError, match="one label per image"):
        DeviceLoader(
            torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
            torch.zeros(3),
            2,
            True,
            True,
            MEAN,
            STD,
            "cpu",
            0,
            False,
        )


class Recorder(L.LightningModule):
    """Records the labels of every training batch; learns a trivial linear map."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 32 * 32, 50)
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append(y.tolist())
        return torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(max_epochs: int, root: Path, ckpt_path=None) -> Recorder:
    module = Recorder()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(
        module,
        train_dataloaders=make_loader(count=24, batch_size=8, seed=3),
        val_dataloaders=make_loader(count=16, batch_size=8, shuffle=False, augment=False),
        ckpt_path=ckpt_path,
    )
    return module


def test_lightning_sets_the_epoch_and_resume_is_exact(tmp_path):
    full = fit(3, tmp_path / "full").seen
    loader = make_loader(count=24, batch_size=8, seed=3)
    expected = []
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        expected += labels_of(loader)
    assert full == expected
    fit(1, tmp_path / "part")
    checkpoint = next((tmp_path / "part").rglob("*.ckpt"))
    resumed = fit(3, tmp_path / "part", ckpt_path=checkpoint).seen
    assert resumed == full[3:]


@pytest.mark.parametrize("loader", ["standard", "device"])
def test_both_loader_paths_train_the_fixture(loader, cifar_fixture, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metric, _ = run_train(
            [
                *cifar_fixture,
                f"data.loader={loader}",
                "data.augment=crop_flip",
                "model.net.norm=batchnorm",
                "trainer.max_epochs=8",
                "optimizer.lr=0.05",
                "data.batch_size=16",
                "logger=csv",
            ],
            tmp_path,
        )
    finally:
        torch.set_num_threads(threads)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert metric > 0.5, f"{loader} loader: val accuracy {metric} not well above chance (0.1)"
