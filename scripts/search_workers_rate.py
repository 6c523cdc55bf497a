"""Trials an Optuna search finishes per hour with N workers on one study, against one worker (same settings).

    python scripts/search_workers_rate.py --minutes 10 -- experiment=lms 'optimizer.lr=tag(log, interval(1e-3, 0.05))'
    python scripts/search_workers_rate.py --workers 1 2 4 --minutes 30 -- experiment=simplenn_robust sweep=optuna_simplenn_budget

For each worker count: a new study in its own SQLite file under --out, that many ``train.py -m
hydra/sweeper=optuna`` processes started together with the given overrides (n_trials set too high to be reached),
all stopped --minutes after each has started a trial (start-up is not counted); the trials that finished in
that window (from the storage), per hour, and the speed-up over the first count. The rows are printed and saved as
``<out>/result.json`` (one row per worker count; the results ledger shows it:
``make reproduce LAB=lms ARGS="--only workers_rate"``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd

from dllabs.reporting.table import show_table
from dllabs.search.study import open_storage

ROOT = Path(__file__).resolve().parents[1]


def wait_for_trials(
    storage: optuna.storages.BaseStorage, count: int, processes: list[subprocess.Popen], limit_s: float = 600
) -> datetime.datetime:
    """When the study first holds ``count`` trials (each worker has started one); a worker that exits first is an error."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise SystemExit(f"a worker exited before the window opened (exit {[p.poll() for p in processes]}): "
                             "run its train.py command alone to see why")
        try:
            if len(optuna.load_study(study_name="rate", storage=storage).get_trials(deepcopy=False)) >= count:
                return datetime.datetime.now()
        except KeyError:  # no worker has created the study yet
            pass
        time.sleep(0.5)
    raise SystemExit(f"the workers started no {count} trials in {limit_s:.0f} s")


def finished_per_hour(overrides: list[str], workers: int, minutes: float, folder: Path) -> dict[str, float]:
    """Run ``workers`` processes on one new study for ``minutes``; the trials they finished, and per hour."""
    url = f"sqlite:///{folder}/studies.db"
    storage = open_storage(url)  # its tables made here, before the workers, which would otherwise race to make them
    command = [
        sys.executable, "train.py", "-m", *overrides, "hydra/sweeper=optuna", f"paths.log_dir={folder}",
        f"hydra.sweep.dir={folder}/sweep", f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=rate",
        "hydra.sweeper.n_trials=100000",
    ]
    processes = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(workers)
    ]
    # the window opens once every worker has started a trial, so start-up (imports, the study's creation) is not
    # counted: on a loaded machine it can outlast a short window
    started = wait_for_trials(storage, workers, processes)
    time.sleep(minutes * 60)
    ended = datetime.datetime.now()
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:  # a worker starts no new trial after SIGTERM; one that outlasts a minute is killed
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    trials = optuna.load_study(study_name="rate", storage=storage).get_trials(deepcopy=False)
    done = [t for t in trials if t.state.is_finished() and started <= t.datetime_complete <= ended]
    return {"workers": workers, "minutes": minutes, "finished": len(done),
            "per_hour": len(done) / ((ended - started).total_seconds() / 3600)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "search_workers_rate")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (the study's settings), after --")
    args = parser.parse_args(argv)
    rows = []
    for workers in args.workers:
        folder = args.out / f"{workers}_workers_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}"
        folder.mkdir(parents=True)
        rows.append(finished_per_hour(args.overrides, workers, args.minutes, folder.resolve()))
        rows[-1]["speed_up"] = rows[-1]["per_hour"] / rows[0]["per_hour"] if rows[0]["per_hour"] else float("nan")
    show_table(pd.DataFrame(rows), title=f"trials finished per hour ({' '.join(args.overrides)})")
    result = {f"{row['workers']} worker{'s' * (row['workers'] > 1)}": {k: v for k, v in row.items() if k != "workers"}
              for row in rows}
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
