"""LMS lab run time: ``train.py experiment=lms`` end to end against the hand-written NumPy loop of the lab.

- ``train.py experiment=lms``: the whole command (start-up, 20 epochs x 100 one-sample updates, test, plots,
  metrics.json), and the part inside ``train`` as recorded in metrics.json (``wall_time_s``);
- baseline: the lab's plain loop (``w += r * e * x`` per sample, whole-set MSE per epoch) in NumPy on the same data
  (``dllabs.data.lms.generate_lms_data`` with the run's seed); its final weights must match the run's.

    python benchmarks/bench_lms.py [--quick]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import compare, main_for, row, run_python

NAME = "lms"
SEED = 12345
RATE = 0.005
EPOCHS = 20
START = (0.53, 0.20, 0.10)


def numpy_lms(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The lab loop: one update per sample, whole-dataset MSE after each epoch."""
    weights = np.asarray(START, dtype=np.float64)
    history = []
    for _ in range(EPOCHS):
        for x, d in zip(features, targets):
            weights = weights + RATE * (d - x @ weights) * x
        history.append(float(np.mean((targets - features @ weights) ** 2)))
    return weights, history


def run(quick: bool) -> list[dict]:
    from dllabs.data.lms import generate_lms_data

    repeats = 1 if quick else 3
    command, inside, record = [], [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(repeats):
            run_dir = Path(scratch) / str(k)
            seconds, done = run_python(
                ["train.py", "experiment=lms", f"seed={SEED}", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"]
            )
            if done.returncode != 0:
                raise RuntimeError(f"train.py experiment=lms failed:\n{done.stderr[-2000:]}")
            record = json.loads((run_dir / "metrics.json").read_text())
            command.append(seconds)
            inside.append(record["wall_time_s"])

    features, targets = generate_lms_data(100, (1.0, 1.0, -2.0), 0.01, SEED)
    loops = 5 if quick else 20
    started = time.perf_counter()
    for _ in range(loops):
        weights, history = numpy_lms(features, targets)
    baseline = (time.perf_counter() - started) / loops

    final = np.asarray(record.get("results", {}).get("final_weights", [np.nan] * 3))
    gap = float(np.max(np.abs(final - weights)))
    rows = [
        row(NAME, "numpy LMS loop (lab baseline)", baseline, "s", note=f"final MSE {history[-1]:.3g}"),
        row(NAME, "train.py experiment=lms, whole command", statistics.median(command), "s"),
        row(
            NAME, "train.py experiment=lms, inside train()", statistics.median(inside), "s",
            note=f"final MSE {record.get('results', {}).get('final_mse', float('nan')):.3g}; "
            f"max |w - w_numpy| {gap:.1e}",
        ),
    ]
    compare(rows, "train.py experiment=lms, whole command", "numpy LMS loop (lab baseline)", better="lower")
    compare(rows, "train.py experiment=lms, inside train()", "numpy LMS loop (lab baseline)", better="lower")
    return rows


if __name__ == "__main__":
    sys.exit(main_for(NAME, run, __doc__))
