"""The results ledger: written from recorded runs by `make reproduce LAB=... ARGS=--quick` and scripts/ledger.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dllabs.reporting.ledger import build_lab, render_index
from tests.conftest import ROOT, run_cli


def _fake_run(folder: Path, overrides: list[str], status: str, val: float | None, test: float | None) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    metrics = {"test/acc": test} if test is not None else {}
    record = {"status": status, "metrics": metrics, "best_score": val, "best_epoch": 3, "epochs_completed": 4,
              "wall_time_s": 120.0}
    if status != "ok":
        record["error"] = "loss is nan at epoch 0"
    (folder / "metrics.json").write_text(json.dumps(record))


def test_settings_are_grouped_over_seeds_with_mean_spread_and_failed_runs_listed(tmp_path):
    lab_dir = tmp_path / "runs" / "robust"
    jobs = [
        (["optimizer.lr=0.01", "seed=1"], "ok", 0.70, 0.69),
        (["optimizer.lr=0.01", "seed=2"], "ok", 0.72, 0.71),
        (["optimizer.lr=1.0", "seed=1"], "diverged", None, None),
    ]
    for number, (overrides, status, val, test) in enumerate(jobs):
        _fake_run(lab_dir / "lr" / str(number), ["experiment=simplenn_cifar10", *overrides], status, val, test)
    (lab_dir / "reproduce.json").write_text(json.dumps({"lr": {
        "command": "python train.py -m experiment=simplenn_cifar10 optimizer.lr=0.01,1.0 seed=1,2",
        "kind": "sweep", "overrides": ["experiment=simplenn_cifar10"], "status": "ok", "commit": "abc123",
        "machine": {"cpu": "Test CPU", "cores": 2}, "finished": "2026-01-01 00:00:00", "seconds": 360.0,
    }}))

    ledger = build_lab("robust", lab_dir, tmp_path / "results")

    step = ledger["steps"][0]
    assert step["reference"].startswith("best lr")
    ok_setting, failed_setting = step["settings"]
    assert ok_setting["setting"] == "optimizer.lr=0.01"
    best = ok_setting["summary"]["best val acc"]
    assert best["n"] == 2 and best["mean"] == pytest.approx(0.71) and best["std"] == pytest.approx(0.0141421, rel=1e-4)
    assert failed_setting["setting"] == "optimizer.lr=1.0" and failed_setting["summary"] == {}
    assert failed_setting["runs"][0]["status"] == "diverged"
    assert json.loads((tmp_path / "results" / "robust.json").read_text())["steps"][0]["commit"] == "abc123"

    page = render_index(tmp_path / "results")
    assert "| `optimizer.lr=0.01` | 2 (ok) | 71.00% ± 1.41% (n=2) |" in page
    assert "job 2 `optimizer.lr=1.0 seed=1`: diverged (loss is nan at epoch 0)" in page
    assert "Commit `abc123`" in page and "Test CPU, 2 cores" in page
    assert "no `make reproduce LAB=lms` run recorded" in page


@pytest.mark.slow
def test_reproduce_quick_writes_the_lab_ledger(tmp_path):
    """`make reproduce LAB=lms ARGS=--quick` end to end: real train.py runs, then the lab's ledger entry."""
    out = tmp_path / "reproduce"
    real_ledger = ROOT / "docs" / "results" / "lms.json"
    before = real_ledger.read_bytes() if real_ledger.exists() else None
    result = run_cli(["scripts/reproduce.py", "lms", "--quick", "--out", str(out), "--only", "reference"], timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    ledger = json.loads((out / "results" / "lms.json").read_text())
    assert ledger["quick"] is True
    (step,) = ledger["steps"]
    assert step["step"] == "reference" and step["status"] == "ok"
    assert step["command"].startswith("python train.py experiment=lms")
    assert step["machine"]["cores"] >= 1 and step["commit"]
    (setting,) = step["settings"]
    (run,) = setting["runs"]
    assert run["status"] == "ok" and run["epochs"] == 1
    assert run["values"]["final MSE"] > 0 and run["values"]["2/lambda_max"] > 0
    page = (out / "results.md").read_text()
    assert "Quick run" in page and "Lab reference: W* = [1.00068" in page
    assert (out / "results" / "figures" / "lms-reference.png").stat().st_size > 1000
    assert (real_ledger.read_bytes() if real_ledger.exists() else None) == before  # the real ledger is untouched


def test_readme_results_are_the_ledgers(tmp_path):
    """Every README results block is generated from docs/results/<lab>.json (scripts/ledger.py rewrites them)."""
    from dllabs.reporting.ledger import README_BLOCK, update_readme

    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    labs = [m.group(2) for m in README_BLOCK.finditer(readme.read_text())]
    assert {"lms", "simplenn", "robust", "imdb"} <= set(labs)
    assert not update_readme(readme, ROOT / "docs" / "results"), (
        "README's ledger blocks differ from docs/results: run `python scripts/ledger.py --index`"
    )
