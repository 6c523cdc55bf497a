"""Issue 25 part 1: a sweep resumed on the same folder with other settings never relabels a finished run.

A job is matched to the run in its folder by its composed config (without ckpt_path), not by its number: a job
whose settings differ is refused with one line before Hydra writes anything, and so is a job that would train
over a finished run without ckpt_path=last. The same-sweep resume is tests/test_resume_sweep.py.
"""

import hashlib
from pathlib import Path

from tests.conftest import QUIET, run_cli

LMS = ["experiment=lms", *QUIET, "trainer.max_epochs=1", "logger=csv"]


def _tree(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def test_a_changed_sweep_on_a_finished_sweep_folder_is_refused_and_changes_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_cli(["train.py", "-m", *LMS, "optimizer.lr=0.005,0.05", f"hydra.sweep.dir={sweep}"])
    assert first.returncode == 0, first.stderr[-3000:]
    before = _tree(sweep)

    changed = run_cli(["train.py", "-m", *LMS, "optimizer.lr=0.01,0.05", f"hydra.sweep.dir={sweep}", "ckpt_path=last"])
    assert changed.returncode == 2, changed.stderr[-3000:]
    lines = changed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {sweep / '0'} holds a run with other settings: "
                                                   "optimizer.lr=0.005 (this job: 0.01)"), changed.stderr
    assert _tree(sweep) == before  # not one file of the sweep written: .hydra/, metrics, checkpoints, multirun.yaml

    again = run_cli(["train.py", "-m", *LMS, "optimizer.lr=0.005,0.05", f"hydra.sweep.dir={sweep}"])
    assert again.returncode == 2, again.stderr[-3000:]
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {sweep / '0'} holds a finished run (ok); pass ckpt_path=last to resume the sweep (finished runs "
        "are skipped), or choose a new hydra.sweep.dir (hydra.run.dir) (sweep job 0 of 2: "), again.stderr
    assert _tree(sweep) == before

    report = run_cli(["scripts/report.py", str(sweep)])
    assert report.returncode == 0, report.stderr[-3000:]
    assert "optimizer.lr=0.005" in report.stdout and "0.01 " not in report.stdout, report.stdout
