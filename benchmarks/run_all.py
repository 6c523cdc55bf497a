"""Run every benchmark (``benchmarks/bench_*.py``), print one table, save it with the machine to JSON.

Each benchmark runs as its own process (clean imports, its own thread settings) and writes its own
``benchmarks/results/<name>_<cpu|gpu>.json``; this script gathers them into one table and
``benchmarks/results/all_<cpu|gpu>.json``. On a GPU machine the same command measures GPU numbers.

    python benchmarks/run_all.py                  # what `make bench` runs
    python benchmarks/run_all.py --quick          # smaller sizes, one repeat: a smoke run (minutes on 2 cores)
    python benchmarks/run_all.py --only startup lms

A full run of every benchmark (no ``--quick``, ``--only`` or ``--skip``) also publishes its table: it writes
``docs/benchmarks/all_<cpu|gpu>.json`` and rewrites the README's ``<!-- bench:<cpu|gpu> -->`` block, so the numbers
the README quotes are those of the latest full run (``--no-publish`` leaves both alone).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    RESULTS,
    device_kind,
    format_markdown,
    format_table,
    machine_info,
    ratios_from_values,
    row,
    run_python,
    save_results,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README_BLOCK = re.compile(r"(<!-- bench:(cpu|gpu) -->\n)(.*?)(<!-- /bench -->)", re.DOTALL)
# benchmarks with their own command line: what --quick means for them
QUICK_ARGS = {
    "cifar": ["--steps", "3", "--warmup", "1", "--loader-batches", "8", "--repeats", "1"],
    "imdb_preprocess": ["--baseline-reviews", "500"],
    "epoch": ["--quick"],
}


def discover() -> dict[str, Path]:
    return {path.stem.removeprefix("bench_"): path for path in sorted(HERE.glob("bench_*.py"))}


def _uses_common_cli(path: Path) -> bool:
    return "main_for(" in path.read_text()


def rows_of(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows of one benchmark's JSON (row lists as they are; the CIFAR and IMDB formats adapted)."""
    if isinstance(result.get("rows"), list):
        return result["rows"]
    if name == "cifar":
        loaders = result.get("loaders", {})
        rows = [
            row(name, "data: standard DataLoader", loaders.get("standard_images_per_s"), "images/s"),
            row(
                name, "data: device loader", loaders.get("device_images_per_s"), "images/s",
                baseline="data: standard DataLoader", ratio=loaders.get("device_over_standard"),
            ),
        ]
        for net, numbers in result.get("training", {}).items():
            plain = f"train {net}: plain PyTorch loop"
            # every plain run (those taking turns with the framework and with the floor): the one baseline value
            plain_runs = numbers.get("plain_runs", []) + numbers.get("floor_plain_runs", [])
            rows.append(row(name, plain, statistics.median(plain_runs) if plain_runs else numbers.get(
                "plain_images_per_s"), "images/s", note="median of every plain run"))
            rows.append(paired(row(name, f"train {net}: framework (Lightning)", numbers.get("framework_images_per_s"),
                                   "images/s", baseline=plain), numbers.get("framework_over_plain")))
            if "floor_over_plain" in numbers:  # Lightning's own cost: a bare LightningModule, same net and step
                rows.append(paired(row(name, f"train {net}: bare LightningModule (floor)", numbers["floor_images_per_s"],
                                       "images/s", baseline=plain), numbers["floor_over_plain"]))
        for net, numbers in result.get("variants", {}).items():
            rows.extend(variant_rows(name, net, numbers))
        return rows
    if name == "imdb_preprocess":
        rows = [row(name, stage, seconds, "s") for stage, seconds in result.get("seconds", {}).items()]
        for r in rows:
            if r["measurement"].startswith("split + vocab + encode"):
                r["ratio"] = result.get("speedup_vs_baseline")
                r["note"] = f"{result.get('reviews')} reviews, vocabulary {result.get('vocab_size')}"
        return rows
    return [row(name, "(see its JSON)", None, "", note=str(sorted(result))[:60])]


def paired(table_row: dict[str, Any], paired_ratio: float | None) -> dict[str, Any]:
    """``table_row`` with the median of its paired runs' ratios kept apart from (and said in the note beside) the
    ratio column, which is the quotient of the values shown."""
    if paired_ratio is None:
        return table_row
    return {**table_row, "paired_ratio": paired_ratio, "note": f"median of paired runs' ratios {paired_ratio:.3g}x"}


def variant_rows(name: str, net: str, numbers: dict[str, Any]) -> list[dict[str, Any]]:
    """The precision rows of one CIFAR net: images/s per variant against fp32, achieved FLOP/s and % of peak."""
    prefix = f"train {net} plain, batch {numbers['batch']}, {numbers['threads']} threads"
    variants = numbers["variants"]
    baseline = f"{prefix}: {next(iter(variants))}"
    rows = []
    for label, entry in variants.items():
        note = f"{entry['achieved_flops'] / 1e9:.1f} GFLOP/s"
        if "of_peak" in entry:
            note += f" = {entry['of_peak']:.1%} of the {entry['peak_kind']} peak"
        if entry.get("compile"):
            note += f"; compiling: {entry['warmup_s']:.0f} s once, empty cache"
        measurement = f"{prefix}: {label}"
        rows.append(row(name, measurement, entry["images_per_s"], "images/s", note=note,
                        **({"baseline": baseline, "paired_ratio": entry["paired_ratio"]} if measurement != baseline
                           else {})))
    if "peak" in numbers:
        for kind in ("fp32", "bf16"):
            rows.append(row(name, f"peak {kind} ({numbers['threads']} cores)", numbers["peak"][f"{kind}_flops"] / 1e9,
                            "GFLOP/s", note=numbers["peak"][kind]))
    rows.append(row(name, f"train {net}: FLOPs per training image", numbers["training_flops_per_image"] / 1e6,
                    "MFLOP", note="layer table's forward MACs x 2 FLOPs x 3 (forward + backward)"))
    return rows


def run_one(name: str, path: Path, quick: bool) -> dict[str, Any]:
    out = RESULTS / f"{name}_{device_kind()}.json"
    args = [str(path), "--out", str(out)]
    if quick:
        args += ["--quick"] if _uses_common_cli(path) else QUICK_ARGS.get(name, [])
    before = out.stat().st_mtime if out.exists() else None
    print(f"== {name}: python {' '.join(args)}", flush=True)
    seconds, done = run_python(args, timeout=3600)
    print(done.stdout.rstrip(), flush=True)
    entry: dict[str, Any] = {"script": path.name, "args": args[1:], "wall_s": round(seconds, 2)}
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {**entry, "status": "failed", "error": done.stderr.strip().splitlines()[-1:] or ["?"]}
    if not out.exists() or out.stat().st_mtime == before:
        first = (done.stdout.strip().splitlines() or ["no result written"])[0]
        return {**entry, "status": "skipped", "note": first}
    return {**entry, "status": "ok", "result": json.loads(out.read_text())}


def choose(benchmarks: dict[str, Path], only: list[str] | None, skip: list[str]) -> list[str]:
    """The benchmarks to run, in discovery order: ``only`` (all when empty) less ``skip``; KeyError on a bad name."""
    unknown = sorted((set(only or []) | set(skip)) - set(benchmarks))
    if unknown:
        raise KeyError(f"no benchmark named {', '.join(unknown)}; known: {', '.join(benchmarks)}")
    return [name for name in benchmarks if (not only or name in only) and name not in skip]


def _commit() -> str:
    """HEAD, with " (uncommitted changes)" when a tracked file the benchmarks run (anything but tests/, docs/ and
    the README) differs from it."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!tests", ":!docs", ":!README.md"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (uncommitted changes)" if dirty else "")


def publish(results_file: Path, readme: Path, docs_dir: Path, commit: str) -> Path:
    """Copy a full run's ``all_<kind>.json`` to ``docs_dir`` and put its table in the README's bench block."""
    payload = json.loads(results_file.read_text())
    if payload.get("quick"):
        raise ValueError("a --quick run measures nothing; only a full run is published")
    kind = "gpu" if payload["machine"].get("gpu") else "cpu"
    payload["commit"] = commit
    docs_dir.mkdir(parents=True, exist_ok=True)
    target = docs_dir / f"all_{kind}.json"
    target.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    machine = payload["machine"]
    where = machine.get("gpu") or f"{machine['cpu']}, {machine['cpu_count']} CPUs"
    body = (
        f"{format_markdown(payload['rows'])}\n\n"
        "*vs baseline*: the row's value over its baseline row's value, both as printed (for times the baseline's over "
        "the row's: > 1 is faster either way); where two contestants took turns, the median of the paired runs' "
        "ratios is in the note.\n\n"
        f"`make bench` on {where} (load average {machine.get('load_average_1min', '?')} when it ended), torch "
        f"{machine['torch']}, commit {commit}, {payload['time']}; all numbers in "
        f"[`{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}`]"
        f"({target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}).\n"
    )
    text = readme.read_text()
    new = README_BLOCK.sub(lambda m: m.group(1) + body + m.group(4) if m.group(2) == kind else m.group(0), text)
    if new != text:
        readme.write_text(new)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat everywhere")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these (names: bench_<NAME>.py)")
    parser.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="leave these out")
    parser.add_argument("--no-publish", action="store_true", help="a full run does not update README/docs")
    args = parser.parse_args(argv)

    benchmarks = discover()
    try:
        chosen = choose(benchmarks, args.only, args.skip)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2

    commit = _commit()  # the code the benchmarks ran: each imports it as its process starts
    started = time.perf_counter()
    entries = {name: run_one(name, benchmarks[name], args.quick) for name in chosen}
    table_rows: list[dict[str, Any]] = []
    for name, entry in entries.items():
        if entry["status"] == "ok":
            table_rows.extend(rows_of(name, entry["result"]))
        else:
            table_rows.append(row(name, entry["status"], None, "", note=str(entry.get("note") or entry.get("error"))))
    ratios_from_values(table_rows)

    machine = machine_info()
    where = machine["gpu"] or machine["cpu"]
    print(f"\nBenchmarks on {where} ({machine['cpu_count']} CPUs, torch {machine['torch']}), "
          f"{'quick' if args.quick else 'full'} run, {time.perf_counter() - started:.0f} s")
    print(format_table(table_rows))
    path = save_results(
        "all", table_rows, quick=args.quick,
        benchmarks={name: {k: v for k, v in entry.items() if k != "result"} for name, entry in entries.items()},
    )
    print(f"results: {path} (and each benchmark's own JSON next to it)")
    failed = any(entry["status"] == "failed" for entry in entries.values())
    if not (args.quick or args.only or args.skip or args.no_publish or failed):
        ended = _commit()
        published = publish(
            path, ROOT / "README.md", ROOT / "docs" / "benchmarks",
            commit if ended == commit else f"{commit} (then {ended} before the run ended)",
        )
        print(f"published: {published} and the README's bench block")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
