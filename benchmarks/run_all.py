"""Run every benchmark (``benchmarks/bench_*.py``), print one table, save it with the machine to JSON.

Each benchmark runs as its own process (clean imports, its own thread settings) and writes its own
``benchmarks/results/<name>_<cpu|gpu>.json``; this script gathers them into one table and
``benchmarks/results/all_<cpu|gpu>.json``. On a GPU machine the same command measures GPU numbers.

    python benchmarks/run_all.py                  # what `make bench` runs
    python benchmarks/run_all.py --quick          # smaller sizes, one repeat: a smoke run (minutes on 2 cores)
    python benchmarks/run_all.py --only startup lms
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS, device_kind, format_table, machine_info, row, run_python, save_results

HERE = Path(__file__).resolve().parent
# benchmarks with their own command line: what --quick means for them
QUICK_ARGS = {
    "cifar": ["--steps", "3", "--warmup", "1", "--loader-batches", "8", "--repeats", "1"],
    "imdb_preprocess": ["--baseline-reviews", "500"],
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
            rows.append(row(name, f"train {net}: plain PyTorch loop", numbers.get("plain_images_per_s"), "images/s"))
            rows.append(
                row(
                    name, f"train {net}: framework (Lightning)", numbers.get("framework_images_per_s"), "images/s",
                    baseline=f"train {net}: plain PyTorch loop", ratio=numbers.get("framework_over_plain"),
                )
            )
        return rows
    if name == "imdb_preprocess":
        rows = [row(name, stage, seconds, "s") for stage, seconds in result.get("seconds", {}).items()]
        for r in rows:
            if r["measurement"].startswith("split + vocab + encode"):
                r["ratio"] = result.get("speedup_vs_baseline")
                r["note"] = f"{result.get('reviews')} reviews, vocabulary {result.get('vocab_size')}"
        return rows
    return [row(name, "(see its JSON)", None, "", note=str(sorted(result))[:60])]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat everywhere")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these (names: bench_<NAME>.py)")
    parser.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="leave these out")
    args = parser.parse_args(argv)

    benchmarks = discover()
    try:
        chosen = choose(benchmarks, args.only, args.skip)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    entries = {name: run_one(name, benchmarks[name], args.quick) for name in chosen}
    table_rows: list[dict[str, Any]] = []
    for name, entry in entries.items():
        if entry["status"] == "ok":
            table_rows.extend(rows_of(name, entry["result"]))
        else:
            table_rows.append(row(name, entry["status"], None, "", note=str(entry.get("note") or entry.get("error"))))

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
    return 1 if any(entry["status"] == "failed" for entry in entries.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
