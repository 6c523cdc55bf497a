"""Optuna searches on the LMS lab (seconds a trial): pruning in and out of process, workers sharing one study in
SQLite and in a real PostgreSQL server, a worker killed mid-trial, resuming an interrupted study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import QUIET, ROOT, run_cli
from tests.postgres_server import postgres_server, server_binaries

pytestmark = pytest.mark.slow
STUDY = "lms_search"
FAST_HEARTBEAT = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=5"]  # killed: FAIL in 5 s


def _search(tmp_path: Path, storage: str, n_trials: int, *extra: str) -> list[str]:
    return [
        "train.py", "-m", "experiment=lms", *QUIET, f"paths.log_dir={tmp_path}", "hydra/sweeper=optuna",
        f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.sweeper.study_name={STUDY}", f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.n_trials={n_trials}", *extra,
    ]


def _worker(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)


def _wait_for(condition, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _running_with_epochs(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        trials = _trials(storage)
    except KeyError:  # the study is not created yet
        return []
    return [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]


def test_hopeless_trials_are_pruned_at_an_early_epoch_in_and_out_of_process(tmp_path):
    storage = f"sqlite:///{tmp_path}/studies.db"
    pruning = ["hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=2"]
    good = run_cli(_search(tmp_path, storage, 2, *pruning, "optimizer.lr=0.01"), timeout=900)
    assert good.returncode == 0, good.stderr[-3000:]
    # a step size 100x too small is hopeless from the first epoch: pruned there, in this process and in a job
    # of its own (submitit), which reaches the study through its storage
    for n_trials, launcher in ((3, []), (4, ["hydra/launcher=local"])):
        hopeless = run_cli(_search(tmp_path, storage, n_trials, *pruning, *launcher, "optimizer.lr=0.0001"), timeout=900)
        assert hopeless.returncode == 0, hopeless.stderr[-3000:]
    trials = _trials(storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED] * 2
    for trial in trials:  # each validation epoch reported at the number of epochs trained: the pruners' resource
        assert sorted(trial.intermediate_values) == list(range(1, len(trial.intermediate_values) + 1))
    for trial in trials[2:]:
        assert trial.user_attrs["pruned_at_epoch"] <= 1
        run = tmp_path / "sweep" / str(trial.number)
        record = json.loads((run / "metrics.json").read_text())
        assert record["status"] == "pruned" and record["pruned_at_epoch"] == trial.user_attrs["pruned_at_epoch"]
        assert record["epochs_completed"] == record["pruned_at_epoch"] + 1 < 20
        assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "curves.png").is_file()
    results = (tmp_path / "sweep" / "trials.csv").read_text()
    assert results.count("PRUNED") == 2
    report = run_cli(["scripts/report.py", str(tmp_path / "sweep")], timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "pruned" in report.stdout


def _two_workers_finish_exactly(tmp_path: Path, storage: str) -> None:
    args = _search(tmp_path, storage, 6, "optimizer.lr=tag(log, interval(0.002, 0.05))")
    workers = [_worker(args, tmp_path / f"worker{i}.log") for i in range(2)]
    for number, worker in enumerate(workers):
        assert worker.wait(timeout=900) == 0, (tmp_path / f"worker{number}.log").read_text()[-3000:]
    trials = _trials(storage)
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert all(" COMPLETE " in log for log in logs), "both workers ran trials"
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()) == [str(n) for n in range(6)]


def test_two_workers_share_a_sqlite_study_and_stop_at_n_trials(tmp_path):
    _two_workers_finish_exactly(tmp_path, f"sqlite:///{tmp_path}/studies.db")


@pytest.mark.skipif(server_binaries() is None, reason="no PostgreSQL server: .ci/run installs Debian's postgresql")
def test_two_workers_share_a_postgresql_study_and_stop_at_n_trials(tmp_path):
    with postgres_server() as url:
        _two_workers_finish_exactly(tmp_path, url)


def test_a_worker_killed_mid_trial_is_failed_by_its_heartbeat_and_the_study_completes(tmp_path):
    storage = f"sqlite:///{tmp_path}/studies.db"
    args = _search(tmp_path, storage, 5, *FAST_HEARTBEAT, "trainer.max_epochs=60",
                   "optimizer.lr=tag(log, interval(0.002, 0.05))")
    doomed = _worker(args, tmp_path / "doomed.log")
    survivor = _worker(args, tmp_path / "survivor.log")
    _wait_for(lambda: len(_running_with_epochs(storage)) == 2)  # both workers are training a trial
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert survivor.wait(timeout=900) == 0, (tmp_path / "survivor.log").read_text()[-3000:]
    trials = _trials(storage)
    assert len(trials) == 5
    states = [t.state for t in trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == 4
    killed = next(t for t in trials if t.state == TrialState.FAIL)
    assert not (tmp_path / "sweep" / str(killed.number) / "metrics.json").exists(), "killed before its record"


def test_a_worker_sent_sigterm_starts_no_new_trial_and_leaves_none_running(tmp_path):
    storage = f"sqlite:///{tmp_path}/studies.db"
    args = _search(tmp_path, storage, 50, "trainer.max_epochs=60", "optimizer.lr=tag(log, interval(0.002, 0.05))")
    worker = _worker(args, tmp_path / "worker.log")
    _wait_for(lambda: len(_running_with_epochs(storage)) == 1 and len(_trials(storage)) == 2)  # in trial 1
    os.killpg(worker.pid, signal.SIGTERM)  # as `kill` or SLURM's scancel stop a worker
    worker.wait(timeout=120)
    log = (tmp_path / "worker.log").read_text()
    assert "SIGTERM: this worker starts no new trial" in log, log[-3000:]
    trials = _trials(storage)
    assert len(trials) == 2 and trials[0].state == TrialState.COMPLETE, log[-3000:]
    assert trials[1].state in (TrialState.FAIL, TrialState.COMPLETE), "stopped in training (FAIL) or after it"


def test_an_interrupted_study_resumes_with_the_same_command(tmp_path):
    storage = f"sqlite:///{tmp_path}/studies.db"
    args = _search(tmp_path, storage, 3, *FAST_HEARTBEAT, "trainer.max_epochs=60",
                   "optimizer.lr=tag(log, interval(0.002, 0.05))")
    interrupted = _worker(args, tmp_path / "interrupted.log")
    _wait_for(lambda: len(_running_with_epochs(storage)) == 1 and len(_trials(storage)) == 2)  # in trial 1
    os.killpg(interrupted.pid, signal.SIGKILL)
    interrupted.wait()
    again = run_cli(args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = _trials(storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    extended = run_cli([*args, "hydra.sweeper.n_trials=4"], timeout=900)  # raise n_trials: one more trial
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert [t.state for t in _trials(storage)][3:] == [TrialState.COMPLETE]
    assert (tmp_path / "sweep" / "3" / "metrics.json").is_file() and not (tmp_path / "sweep" / "4").exists()
