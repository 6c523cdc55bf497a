"""Shared pieces of the benchmarks: the machine description, one table format, JSON results, timing helpers.

A benchmark module exposes ``run(quick: bool) -> list[dict]``; each row is a dict with ``benchmark``,
``measurement``, ``value``, ``unit`` and optionally ``baseline`` (the measurement it is compared with),
``ratio`` (its speed vs the baseline: value over the baseline's value for rates, the inverse for times, so > 1 is
faster; :func:`ratios_from_values` makes every table's ratio that quotient of the values shown) and ``note``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dllabs.hardware import cpu_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load, Python/torch versions and the GPU (if any) this ran on."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "gpu": None,
    }
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
    return info


def device_kind() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def row(benchmark: str, measurement: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"benchmark": benchmark, "measurement": measurement, "value": value, "unit": unit, **extra}


def compare(rows: list[dict[str, Any]], measurement: str, baseline: str, better: str) -> None:
    """Set ``ratio`` on ``measurement``'s row as its speed relative to ``baseline``'s (> 1 = faster).

    ``better`` is ``higher`` for rates (images/s) and ``lower`` for times (seconds).
    """
    by_name = {r["measurement"]: r for r in rows}
    if measurement not in by_name or baseline not in by_name:
        return
    value, base = by_name[measurement]["value"], by_name[baseline]["value"]
    if not value or not base:
        return
    by_name[measurement]["baseline"] = baseline
    by_name[measurement]["ratio"] = value / base if better == "higher" else base / value


LOWER_IS_BETTER = {"s", "min"}  # units of times: a row's speed vs its baseline is the baseline's value over its own


def ratios_from_values(rows: list[dict[str, Any]]) -> None:
    """Make each row's ``ratio`` the quotient of the values printed beside it: its value over its baseline's (the
    row named by ``baseline`` in the same benchmark), or the inverse for times, so > 1 is faster either way. A
    ratio measured another way (e.g. the median of paired runs) lives in its own key and the note, not here."""
    by_name = {(r.get("benchmark"), r.get("measurement")): r for r in rows}
    for r in rows:
        base = by_name.get((r.get("benchmark"), r.get("baseline")))
        if base is None or not r.get("value") or not base.get("value"):
            continue
        r["ratio"] = base["value"] / r["value"] if r.get("unit") in LOWER_IS_BETTER else r["value"] / base["value"]


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
        return f"{value:.3g}"
    return str(value)


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One plain-text table: benchmark | measurement | value | unit | speed vs baseline | note."""
    header = ("benchmark", "measurement", "value", "unit", "vs baseline", "note")
    lines = [
        (
            str(r.get("benchmark", "")),
            str(r.get("measurement", "")),
            _number(r.get("value", "")),
            str(r.get("unit", "")),
            f"{r['ratio']:.3g}x" if isinstance(r.get("ratio"), (int, float)) else "",
            _short(str(r.get("note", ""))),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    right = {2, 4}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The same table as :func:`format_table`, in Markdown (for the README and docs/benchmarks)."""
    lines = ["| benchmark | measurement | value | unit | vs baseline | baseline | note |", "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.3g}x" if isinstance(r.get("ratio"), (int, float)) else ""
        cells = [str(r.get("benchmark", "")), str(r.get("measurement", "")), _number(r.get("value", "")),
                 str(r.get("unit", "")), ratio, str(r.get("baseline", "") or ""), str(r.get("note", "") or "")]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def save_results(name: str, rows: list[dict[str, Any]], out: Path | None = None, **extra: Any) -> Path:
    """``benchmarks/results/<name>_<cpu|gpu>.json`` with the rows, the machine and the time."""
    target = out or RESULTS / f"{name}_{device_kind()}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "rows": rows,
        **extra,
    }
    target.write_text(json.dumps(payload, indent=2, default=str))
    return target


def median_time(function: Callable[[], Any], repeats: int, warmup: int = 0) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_python(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``python <args>`` in the repository root; returns (wall seconds, completed process)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )
    return time.perf_counter() - started, done


def main_for(name: str, run: Callable[[bool], list[dict[str, Any]]], doc: str | None, argv: list[str] | None = None) -> int:
    """The command line of one benchmark module: ``--quick``, ``--out``; prints the table, saves JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(format_table(rows))
    path = save_results(name, rows, args.out, quick=args.quick)
    print(f"results: {path}")
    return 0
