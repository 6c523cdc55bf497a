"""Issue 13a: a run without an experiment is filed under <model>_<data>, so ckpt_path=last never resumes
another model's checkpoint."""

import pytest

from tests.conftest import QUIET, TWO_BATCHES, run_cli


@pytest.mark.slow
def test_ckpt_path_last_never_picks_another_models_run(cifar_fixture, tmp_path):
    quick = [*cifar_fixture, *QUIET, *TWO_BATCHES, "data.train_subset=64", f"paths.log_dir={tmp_path}"]
    first = run_cli(["train.py", "model=simplenn", "data=cifar10", *quick])
    assert first.returncode == 0, first.stderr[-2000:]
    assert list((tmp_path / "simplenn_cifar10" / "runs").glob("*/checkpoints/last.ckpt"))

    other = run_cli(["train.py", "model=resnet20", "data=cifar10", "ckpt_path=last", *quick])
    assert other.returncode == 2, other.stderr[-2000:]
    error = other.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ckpt_path=last: no last.ckpt") and "resnet20_cifar10" in error, error
    assert "simplenn_cifar10" not in error
