"""A real multirun over two config groups on top of an experiment: 4 members, each `ok` in the sweep table."""

import pytest

from dllabs.reporting.multirun import report
from tests.conftest import QUIET, TWO_BATCHES, run_cli


@pytest.mark.slow
def test_optimizer_by_scheduler_sweep_on_an_experiment(cifar_fixture, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        ["train.py", "-m", "experiment=simplenn_cifar10", "optimizer=sgd,adam", "scheduler=constant,cosine",
         *cifar_fixture, *QUIET, *TWO_BATCHES, "data.train_subset=64", f"hydra.sweep.dir={sweep_dir}"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, rows = report(sweep_dir)
    print("\n" + "\n".join(f"{row['setting']}: {row['status']}" for row in rows))
    assert sorted(row["setting"] for row in rows) == sorted(
        f"optimizer={o} scheduler={s}" for o in ("sgd", "adam") for s in ("constant", "cosine")
    )
    assert [row["status"] for row in rows] == ["ok"] * 4
