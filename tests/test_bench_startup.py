"""bench_startup times whole train.py commands more than once: each repeat needs a run folder of its own."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_startup  # benchmarks/ is a folder of scripts, put on sys.path above


@pytest.mark.slow
def test_a_whole_command_is_timed_twice_each_in_its_own_run_folder(tmp_path):
    seconds, _ = bench_startup._timed(
        ["train.py", "experiment=lms", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}/{{repeat}}"], 2
    )
    assert seconds > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1"]
    assert all((tmp_path / n / "metrics.json").is_file() for n in ("0", "1"))
