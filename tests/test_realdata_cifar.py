"""Smoke runs on the real CIFAR-10 copy (../shared/data or DLLABS_DATA_DIR); skipped when it is absent."""

import json

import pytest

from tests.conftest import run_train


@pytest.mark.realdata
@pytest.mark.slow
def test_one_epoch_on_5k_images_beats_30_percent(shared_data, tmp_path):
    if not (shared_data / "cifar-10-batches-py").is_dir():
        pytest.skip("no cifar-10-batches-py in the real data folder")
    run_train(
        [
            f"data.data_dir={shared_data}", "data.download=false", "data.num_workers=0",
            "data.train_subset=5000", "trainer.max_epochs=1", "optimizer.lr=0.05", "model.net.norm=batchnorm",
            "data.batch_size=32", "trainer.limit_test_batches=10",
        ],
        tmp_path,
    )
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert record["metrics"]["val/acc"] > 0.30, record["metrics"]
