"""The results ledger: written from recorded runs by `make reproduce LAB=... ARGS=--quick` and scripts/ledger.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

# what Hydra's sweeper escapes a job's overrides with
from hydra._internal.grammar.utils import escape_special_characters

from dllabs.errors import ConfigError
from dllabs.labs import LABS
from dllabs.provenance import tree
from dllabs.reporting.ledger import build_lab
from dllabs.reporting.ledger_markdown import README_BLOCK, render_brief, render_index, update_readme
from tests.conftest import ROOT, run_cli
from tests.fixtures import wikitext


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
    assert "Commit `abc123`," in page and "Test CPU, 2 cores" in page
    assert "no `make reproduce LAB=lms` run recorded" in page


def test_lm_steps_read_nested_results_group_by_the_typed_overrides_and_show_report_results(tmp_path):
    """Lab 7's ledger: numbers deep in metrics.json ``results``, interpolated overrides that Hydra's sweeper stores
    escaped (``$\\{paths.data_dir\\}``) still recognised as the step's own, and a report step's result.json."""
    lab_dir = tmp_path / "runs" / "gpt2"
    tokenizer = "data.tokenizer=${paths.data_dir}/gpt2-tokenizer"
    data_dir = "data.data_dir=${oc.env:DLLABS_DATA_DIR}"
    for number, method in enumerate(("full", "lora")):
        folder = lab_dir / "small_full_vs_lora" / str(number)
        (folder / ".hydra").mkdir(parents=True)
        # as Hydra's sweeper writes a job's overrides: values re-rendered with special characters escaped
        stored = [f"{key}={escape_special_characters(value)}" for key, value in
                  (o.split("=", 1) for o in (tokenizer, data_dir))]
        assert stored == ["data.tokenizer=$\\{paths.data_dir\\}/gpt2-tokenizer", "data.data_dir=$\\{oc.env\\:DLLABS_DATA_DIR\\}"]
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*stored, f"finetune={method}"]))
        (folder / "metrics.json").write_text(json.dumps({
            "status": "ok", "metrics": {"val/ppl": 100.0 + number, "test/ppl_lab_maskcount": 90.0},
            "best_score": 100.0, "epochs_completed": 3, "wall_time_s": 60.0,
            "results": {"train_steps": 141, "tokens_per_s": 1234.5, "params": {"trainable": 65536 if number else 7_000_000},
                        "perplexity": {"val_before": 50000.0}},
        }))
    (lab_dir / "lora_params").mkdir(parents=True)
    (lab_dir / "lora_params" / "result.json").write_text(json.dumps({"trainable_parameters": 2359296}))
    common = {"status": "ok", "commit": "abc123", "machine": {"cpu": "Test CPU", "cores": 2}}
    (lab_dir / "reproduce.json").write_text(json.dumps({
        "small_full_vs_lora": {**common, "command": "python train.py -m ...", "kind": "sweep",
                               "overrides": ["experiment=gpt2_full", tokenizer, data_dir, "sweep=gpt2_finetune"]},
        "lora_params": {**common, "command": "python scripts/lora_params.py", "kind": "report"},
    }))

    ledger = build_lab("gpt2", lab_dir, tmp_path / "results")

    sweep_step, params_step = ledger["steps"]
    assert [s["setting"] for s in sweep_step["settings"]] == ["finetune=full", "finetune=lora"]
    lora = sweep_step["settings"][1]["runs"][0]["values"]
    assert lora["optimiser steps"] == 141 and lora["trainable params"] == 65536 and lora["val ppl before"] == 50000.0
    assert lora["val ppl"] == 101.0 and lora["test ppl, lab's NLL/mask count"] == 90.0 and lora["tokens/s"] == 1234.5
    assert params_step["result"] == {"trainable_parameters": 2359296}
    page = render_index(tmp_path / "results")
    assert "| `finetune=lora` | 1 (ok) | 101.00 | - | 50000.00 | 90.00 | 141 | 1,234 | - | 65,536 |" in page
    assert "- trainable_parameters: 2,359,296" in page
    brief = render_brief(ledger)  # the README's rows: the lab's chosen columns, in their order
    assert brief.startswith("| step | setting | runs | val ppl before | val ppl | optimiser steps | tokens/s | lab reference |")
    assert "|  | `finetune=lora` | 1 (ok) | 50000.00 | 101.00 | 141 | 1,234 |  |" in brief


def test_lora_params_script_counts_the_lab_config_on_the_real_gpt2_shape(tmp_path):
    """`python scripts/lora_params.py` (a reproduce step of lab 7): 2,359,296 from conf/finetune/lora.yaml, no weights."""
    result = run_cli(["scripts/lora_params.py", "--out", str(tmp_path)], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LoRA trainable parameters: 2,359,296" in result.stdout
    assert json.loads((tmp_path / "result.json").read_text())["trainable_parameters"] == 2_359_296
    assert "deprecated" not in result.stderr  # peft's call into transformers' deprecated API is silenced
    smaller = run_cli(["scripts/lora_params.py", "finetune.r=8"], timeout=300)
    assert "LoRA trainable parameters: 294,912" in smaller.stdout  # r x (768 + 2304) x 12 layers
    bad = run_cli(["scripts/lora_params.py", "r=8"], timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: r=8: overrides are finetune.KEY=VALUE or architecture.KEY=VALUE"


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
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    labs = [m.group(2) for m in README_BLOCK.finditer(readme.read_text())]
    assert {"lms", "simplenn", "robust", "imdb"} <= set(labs)
    assert not update_readme(readme, ROOT / "docs" / "results"), (
        "README's ledger blocks differ from docs/results: run `python scripts/ledger.py --index`"
    )


@pytest.mark.slow
def test_reproduce_quick_runs_lab7s_small_steps_into_the_ledger(tmp_path):
    """`make reproduce LAB=gpt2 ARGS="--quick --only small_full_vs_lora small_compare"`: the lab-7 steps a machine
    without the pretrained weights records (a sweep step and the table step that compares its runs), end to end on
    WikiText-format files and a GPT-2-format tokenizer made here (the steps read both from the data folder, as from
    ../shared/data). small_protocols is a sweep step of the same kind; its three protocols train in
    tests/test_gpu_check.py, which keeps this test's minute for the ledger."""
    data = tmp_path / "data"
    # 10% of 400 validation lines (the lab's fraction) is more than the two batches --quick trains
    wikitext.write_wikitext(data / "wikitext-2-raw", {"train": 20, "valid": 400, "test": 100})
    wikitext.make_tokenizer(data / "gpt2-tokenizer")
    out = tmp_path / "reproduce"
    steps = ["small_full_vs_lora", "small_compare"]
    result = run_cli(
        ["scripts/reproduce.py", "gpt2", "--quick", "--out", str(out), "--only", *steps],
        timeout=900, env={"DLLABS_DATA_DIR": str(data)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    ledger = json.loads((out / "results" / "gpt2.json").read_text())
    by_step = {step["step"]: step for step in ledger["steps"]}
    assert set(by_step) == {"small_full_vs_lora"}  # small_compare's table is linked, not a row
    assert all(step["status"] == "ok" for step in by_step.values())
    assert ledger["quick"] is True

    def runs(step: str) -> dict[str, dict]:
        return {s["setting"]: run for s in by_step[step]["settings"] for run in s["runs"]}

    full_lora = runs("small_full_vs_lora")
    assert sorted(full_lora) == ["finetune=full", "finetune=lora"], sorted(full_lora)
    for setting, run in full_lora.items():
        assert run["status"] == "ok", (setting, run["error"])
        values = run["values"]
        assert values["optimiser steps"] == 2  # --quick: two batches
        assert values["val ppl before"] > 1 and values["val ppl"] > 1 and values["tokens/s"] > 0
    assert full_lora["finetune=lora"]["values"]["trainable params"] < full_lora["finetune=full"]["values"]["trainable params"]
    assert (out / "gpt2" / "small_full_vs_lora" / "lm_compare.png").stat().st_size > 1000  # small_compare's figure
    assert by_step["small_full_vs_lora"]["figure"] == "figures/gpt2-small_full_vs_lora.png"
    assert "Quick run" in (out / "results.md").read_text()


def _lab_with_one_run(lab_dir: Path, step: str, commit: str, diff: str | None = None) -> Path:
    """A lab folder whose step ``step`` is one finished run, logged in reproduce.json at another time."""
    _fake_run(lab_dir / step, ["experiment=simplenn_robust"], "ok", 0.75, 0.74)
    (lab_dir / "reproduce.json").write_text(json.dumps({step: {
        "command": "python train.py experiment=simplenn_robust", "kind": "run", "overrides": ["experiment=simplenn_robust"],
        "status": "ok", "commit": commit, "diff": diff, "machine": {"cpu": "Test CPU", "cores": 2},
        "finished": "2030-01-01 00:00:00", "seconds": 60.0,
    }}))
    return lab_dir / step / "metrics.json"


def test_a_step_the_lab_does_not_have_is_an_error_not_a_dropped_reference(tmp_path):
    lab_dir = tmp_path / "robust"
    _lab_with_one_run(lab_dir, "bset", "abc123")
    with pytest.raises(ConfigError, match="lab robust has no step bset; steps: augment, batchnorm"):
        build_lab("robust", lab_dir, tmp_path / "results")


def test_the_markdown_shows_the_commit_string_the_json_holds(tmp_path):
    """A -dirty commit and the hash of its uncommitted changes appear on the page as the JSON holds them."""
    commit = "e8cc343d163593e1ff9fc9d84cbef9a32eed3497-dirty"
    lab_dir = tmp_path / "robust"
    _lab_with_one_run(lab_dir, "best", commit, diff="0123456789ab")
    ledger = build_lab("robust", lab_dir, tmp_path / "results")
    assert ledger["steps"][0]["commit"] == commit
    page = render_index(tmp_path / "results")
    assert f"Commit `{commit}` (uncommitted changes, diff sha256 `0123456789ab`)," in page
    assert "From the [results ledger](docs/results.md) (commit e8cc343-dirty;" in render_brief(ledger)


def test_every_recorded_commit_string_is_on_the_results_page():
    """docs/results.md shows each step's commit exactly as docs/results/<lab>.json holds it (-dirty included)."""
    page = (ROOT / "docs" / "results.md").read_text()
    for file in sorted((ROOT / "docs" / "results").glob("*.json")):
        for step in json.loads(file.read_text())["steps"]:
            assert f"Commit `{step['commit']}`" in page, (file.name, step["step"], step["commit"])
    assert page == render_index(ROOT / "docs" / "results"), "run python scripts/ledger.py --index"


def test_a_rebuild_keeps_the_runs_own_time(tmp_path):
    """A step's ``finished`` is when its run wrote metrics.json, not the step log's time nor the rebuild's, and a
    rebuild writes the same JSON."""
    lab_dir = tmp_path / "robust"
    metrics = _lab_with_one_run(lab_dir, "best", "abc123")
    written = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    os.utime(metrics, (written, written))
    first = build_lab("robust", lab_dir, tmp_path / "results")
    assert first["steps"][0]["finished"] == "2026-03-04 05:06:07"
    before = (tmp_path / "results" / "robust.json").read_bytes()
    time.sleep(1.1)
    build_lab("robust", lab_dir, tmp_path / "results")
    assert (tmp_path / "results" / "robust.json").read_bytes() == before


def test_a_rebuild_from_a_step_log_without_a_recorded_step_keeps_that_step(tmp_path):
    """Recording lab 5's fast_cpu from a folder that lacks the fast run must not drop fast's row from the ledger."""
    results = tmp_path / "results"
    _lab_with_one_run(tmp_path / "machine_a" / "robust", "lr", "aaa111")
    kept = build_lab("robust", tmp_path / "machine_a" / "robust", results)["steps"][0]
    _lab_with_one_run(tmp_path / "machine_b" / "robust", "best", "bbb222")
    ledger = build_lab("robust", tmp_path / "machine_b" / "robust", results)
    assert [step["step"] for step in ledger["steps"]] == ["best", "lr"]  # the lab's order
    assert ledger["steps"][1] == kept and ledger["steps"][0]["commit"] == "bbb222"
    quick = build_lab("robust", tmp_path / "machine_b" / "robust", results, quick=True)  # a check replaces, keeps nothing
    assert [step["step"] for step in quick["steps"]] == ["best"]


def test_reproduce_names_the_steps_when_asked_for_one_the_lab_does_not_have():
    result = run_cli(["scripts/reproduce.py", "resnet20", "--only", "fast_cpus", "--dry-run"])
    assert result.returncode == 2
    steps = ", ".join(step.name for step in LABS["resnet20"].steps)  # the registry's, however many
    assert result.stderr.strip() == f"error: lab resnet20 has no step fast_cpus; steps: {steps}"
    listed = run_cli(["scripts/reproduce.py", "--list"])
    assert f"resnet20: {steps}" in listed.stdout.splitlines()


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A real git repository holding scripts/reproduce.py, a config, docs, tests and a README, all committed."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "reproduce.py", repo / "scripts" / "reproduce.py")
    for path, text in {"conf/train.yaml": "seed: 1\n", "docs/notes.md": "notes\n", "tests/test_x.py": "x = 1\n",
                       "README.md": "readme\n"}.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "start")
    return repo


def test_changes_to_docs_tests_readme_and_outputs_do_not_make_the_tree_dirty(checkout):
    head = _git(checkout, "rev-parse", "HEAD").strip()
    for path in ("docs/notes.md", "tests/test_x.py", "README.md"):
        (checkout / path).write_text("edited\n")
    (checkout / "outputs").mkdir()
    (checkout / "outputs" / "run.log").write_text("log\n")
    clean = tree(checkout)
    assert clean is not None and not clean.dirty and clean.commit == head and clean.diff_hash is None
    (checkout / "conf" / "train.yaml").write_text("seed: 2\n")
    (checkout / "conf" / "new.yaml").write_text("a: 1\n")  # a new config file is part of what runs
    dirty = tree(checkout)
    assert dirty is not None and dirty.commit == head + "-dirty"
    assert sorted(dirty.changed) == ["conf/new.yaml", "conf/train.yaml"]


def test_reproduce_refuses_a_dirty_tree_and_records_the_diff_hash_when_allowed(checkout):
    """`make reproduce` from a checkout with an uncommitted config change: one error line, exit 2, nothing written;
    with --allow-dirty the step log and the ledger carry the -dirty commit and the diff's hash, and the diff is kept."""
    head = _git(checkout, "rev-parse", "HEAD").strip()
    (checkout / "conf" / "train.yaml").write_text("seed: 2\n")
    out = checkout / "outputs" / "reproduce"
    args = ["scripts/reproduce.py", "lms", "--only", "reference", "--out", str(out)]

    refused = run_cli(args, cwd=checkout)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [(
        "error: uncommitted changes to code or config (conf/train.yaml): commit them first, so the ledger names the "
        "code that ran, or pass --allow-dirty to record with the diff's hash"
    )]
    assert not out.exists()

    allowed = run_cli([*args, "--allow-dirty"], cwd=checkout)  # the copy has no train.py: the step fails, is recorded
    assert allowed.returncode == 1, allowed.stdout + allowed.stderr
    step = json.loads((out / "lms" / "reproduce.json").read_text())["reference"]
    diff = (out / "lms" / f"uncommitted-{step['diff']}.diff").read_text()
    assert "+seed: 2" in diff and step["diff"] == hashlib.sha256(diff.encode()).hexdigest()[:12]
    assert step["commit"] == head + "-dirty" and step["status"] == "failed"
    assert f"diff sha256 {step['diff']}" in allowed.stdout
    page = (out / "results.md").read_text()
    assert f"Commit `{head}-dirty` (uncommitted changes, diff sha256 `{step['diff']}`)" in page


def test_readme_brief_shows_a_search_by_its_best_setting():
    """A step with many settings (an Optuna search's trials) is one README row: its best setting, said so."""
    from dllabs.reporting.ledger_markdown import BRIEF_SETTINGS, render_brief

    n = BRIEF_SETTINGS + 4
    settings = [
        {"setting": f"optimizer.lr={i}", "runs": [{"status": "ok"}],
         "summary": {"best val acc": {"mean": 0.5 + (i % 5) / 100, "std": None, "n": 1}}}
        for i in range(n)
    ]
    settings.append({"setting": "optimizer.lr=pruned", "runs": [{"status": "pruned"}], "summary": {}})
    ledger = {"lab": "robust", "metrics": ["best val acc"],
              "steps": [{"step": "search", "commit": "abc1234", "settings": settings}]}
    rows = [line for line in render_brief(ledger).splitlines() if line.startswith("| `search`")]
    assert len(rows) == 1
    assert f"best of {n + 1}: `optimizer.lr=4`" in rows[0] and "54.00%" in rows[0]
