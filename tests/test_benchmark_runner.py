"""The benchmark runner's argument handling (``benchmarks/run_all.py``), without running any benchmark."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_all
from common import format_markdown, ratios_from_values, row

NAMES = ["cifar", "epoch", "gpt2", "imdb_preprocess", "lms", "lstm", "startup"]


def test_discovers_every_bench_script():
    assert sorted(run_all.discover()) == NAMES


@pytest.mark.parametrize(
    ("only", "skip", "expected"),
    [
        (None, [], NAMES),
        (["cifar"], [], ["cifar"]),
        (["startup", "lms"], [], ["lms", "startup"]),  # discovery order, not argument order
        (None, ["gpt2", "lstm"], ["cifar", "epoch", "imdb_preprocess", "lms", "startup"]),
        (["cifar", "lms"], ["lms"], ["cifar"]),
    ],
)
def test_choose(only, skip, expected):
    assert run_all.choose(run_all.discover(), only, skip) == expected


@pytest.mark.parametrize(("only", "skip"), [(["cifr"], []), (None, ["nope"]), (["cifar"], ["nope"])])
def test_choose_rejects_unknown_names(only, skip):
    with pytest.raises(KeyError, match="no benchmark named"):
        run_all.choose(run_all.discover(), only, skip)


def test_unknown_name_is_one_error_line_and_exit_2():
    result = run_cli(["benchmarks/run_all.py", "--only", "cifar", "nosuch"], timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: no benchmark named nosuch; known: " + ", ".join(NAMES)
    )
    assert "== cifar" not in result.stdout  # nothing ran


def _all_results(tmp_path, quick=False, gpu=None):
    payload = {
        "benchmark": "all", "time": "2026-12-03T12:00:00+00:00", "quick": quick,
        "machine": {"cpu": "Test CPU", "cpu_count": 2, "torch": "2.x", "gpu": gpu, "load_average_1min": 0.1},
        "rows": [
            {"benchmark": "cifar", "measurement": "train simplenn: plain PyTorch loop", "value": 1000.0, "unit": "images/s"},
            {"benchmark": "cifar", "measurement": "train simplenn: framework (Lightning)", "value": 990.0,
             "unit": "images/s", "baseline": "train simplenn: plain PyTorch loop", "ratio": 0.99},
        ],
    }
    path = tmp_path / "all.json"
    path.write_text(json.dumps(payload))
    return path


def test_a_full_run_publishes_its_table_into_its_own_readme_block(tmp_path):
    readme = tmp_path / "README.md"
    untouched = "<!-- bench:gpu -->\nGPU numbers\n<!-- /bench -->\n"
    readme.write_text(f"intro\n<!-- bench:cpu -->\nold numbers\n<!-- /bench -->\n{untouched}")
    target = run_all.publish(_all_results(tmp_path), readme, tmp_path / "docs", "abc1234")
    text = readme.read_text()
    assert "old numbers" not in text and text.endswith(untouched)
    assert "| cifar | train simplenn: framework (Lightning) | 990.0 | images/s | 0.99x | train simplenn: plain PyTorch loop |" in text
    assert "commit abc1234" in text and "Test CPU, 2 CPUs" in text
    assert json.loads(target.read_text())["commit"] == "abc1234" and target.name == "all_cpu.json"


def test_a_quick_run_is_never_published(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:cpu -->\nold\n<!-- /bench -->\n")
    with pytest.raises(ValueError, match="only a full run is published"):
        run_all.publish(_all_results(tmp_path, quick=True), readme, tmp_path / "docs", "abc1234")
    assert readme.read_text() == "<!-- bench:cpu -->\nold\n<!-- /bench -->\n"


def test_readme_bench_blocks_are_the_published_runs():
    """The README quotes the latest published full run, not numbers typed by hand."""
    readme = (ROOT / "README.md").read_text()
    blocks = {m.group(2): m.group(3) for m in run_all.README_BLOCK.finditer(readme)}
    assert set(blocks) == {"cpu", "gpu"}
    for kind, body in blocks.items():
        published = ROOT / "docs" / "benchmarks" / f"all_{kind}.json"
        if not published.exists():
            assert body.startswith("Not measured yet"), kind
            continue
        payload = json.loads(published.read_text())
        assert not payload["quick"]
        assert body.startswith(format_markdown(payload["rows"]) + "\n\n"), kind


def test_cifar_rows_carry_the_lightning_floor_against_the_plain_loop():
    result = {
        "loaders": {"standard_images_per_s": 10.0, "device_images_per_s": 90.0, "device_over_standard": 9.0},
        "training": {
            "simplenn": {
                "plain_images_per_s": 100.0, "framework_images_per_s": 95.0, "framework_over_plain": 0.95,
                "floor_images_per_s": 97.0, "floor_over_plain": 0.97,
                "plain_runs": [100.0, 104.0], "floor_plain_runs": [98.0, 120.0],
            },
            "resnet20": {"plain_images_per_s": 10.0, "framework_images_per_s": 10.0, "framework_over_plain": 1.0},
        },
    }
    rows = run_all.rows_of("cifar", result)
    ratios_from_values(rows)
    rows = {r["measurement"]: r for r in rows}
    plain = rows["train simplenn: plain PyTorch loop"]
    assert plain["value"] == 102.0  # the median of every plain run, both pairings
    floor = rows["train simplenn: bare LightningModule (floor)"]
    assert (floor["value"], floor["baseline"]) == (97.0, "train simplenn: plain PyTorch loop")
    assert floor["ratio"] == pytest.approx(97.0 / 102.0)  # the quotient of the values shown ...
    assert floor["paired_ratio"] == 0.97 and "0.97x" in floor["note"]  # ... the paired median said beside it
    assert rows["train simplenn: framework (Lightning)"]["ratio"] == pytest.approx(95.0 / 102.0)
    assert "train resnet20: bare LightningModule (floor)" not in rows  # a run with --no-floor has none


def test_every_ratio_is_the_quotient_of_the_values_beside_it():
    """Issue 25: a ratio column that disagrees with its values (0.976x beside 269.3 / 280.1 = 0.961) is fixed from
    the values, for rates and (inverted) for times; a row whose baseline is not in the table keeps its ratio."""
    rows = [
        row("a", "plain", 280.1, "images/s"),
        row("a", "floor", 269.3, "images/s", baseline="plain", ratio=0.976),
        row("a", "numpy", 0.004, "s"),
        row("a", "whole command", 8.0, "s", baseline="numpy", ratio=3.0),
        row("b", "plain", 1.0, "images/s", baseline="elsewhere", ratio=2.0),
    ]
    ratios_from_values(rows)
    assert rows[1]["ratio"] == pytest.approx(269.3 / 280.1)
    assert rows[3]["ratio"] == pytest.approx(0.004 / 8.0)
    assert rows[4]["ratio"] == 2.0


def test_published_table_ratios_agree_with_their_values():
    published = ROOT / "docs" / "benchmarks" / "all_cpu.json"
    if not published.exists():
        pytest.skip("no published CPU run")
    rows = json.loads(published.read_text())["rows"]
    values = {(r["benchmark"], r["measurement"]): r["value"] for r in rows}
    for r in rows:
        base = values.get((r["benchmark"], r.get("baseline")))
        if isinstance(r.get("ratio"), float) and base and r.get("value"):
            quotient = base / r["value"] if r["unit"] in ("s", "min") else r["value"] / base
            assert r["ratio"] == pytest.approx(quotient, rel=1e-6), r["measurement"]


def test_precision_rows_show_flops_and_share_of_peak():
    numbers = {
        "batch": 256, "threads": 2, "training_flops_per_image": 243_306_240,
        "variants": {
            "fp32": {"images_per_s": 500.0, "paired_ratio": 1.0, "achieved_flops": 500 * 243_306_240,
                     "of_peak": 500 * 243_306_240 / 332.8e9, "peak_kind": "fp32", "warmup_s": 1.0},
            "bf16-mixed + channels_last + compile": {
                "images_per_s": 1000.0, "paired_ratio": 2.1, "achieved_flops": 1000 * 243_306_240, "compile": True,
                "of_peak": 1000 * 243_306_240 / 10649.6e9, "peak_kind": "bf16", "warmup_s": 42.0},
        },
        "peak": {"fp32_flops": 332.8e9, "bf16_flops": 10649.6e9, "fp32": "2 cores x ...", "bf16": "2 cores x ..."},
    }
    rows = run_all.variant_rows("cifar", "resnet20", numbers)
    ratios_from_values(rows)
    rows = {r["measurement"]: r for r in rows}
    fp32 = rows["train resnet20 plain, batch 256, 2 threads: fp32"]
    best = rows["train resnet20 plain, batch 256, 2 threads: bf16-mixed + channels_last + compile"]
    assert "ratio" not in fp32 and best["ratio"] == pytest.approx(2.0) and best["paired_ratio"] == 2.1
    assert fp32["note"] == "121.7 GFLOP/s = 36.6% of the fp32 peak"
    assert best["note"] == "243.3 GFLOP/s = 2.3% of the bf16 peak; compiling: 42 s once, empty cache"
    assert rows["peak bf16 (2 cores)"]["value"] == pytest.approx(10649.6)


def test_commit_label_says_uncommitted_only_for_code_the_benchmarks_run(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("src/code.py", "tests/test_code.py", "docs/notes.md", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    clean = run_all._commit()
    assert clean and "uncommitted" not in clean
    for name in ("tests/test_code.py", "docs/notes.md", "README.md"):
        (tmp_path / name).write_text("edited\n")
    assert run_all._commit() == clean
    (tmp_path / "src/code.py").write_text("edited\n")
    assert run_all._commit() == f"{clean} (uncommitted changes)"
