"""The results ledger in Markdown: ``docs/results.md`` and the README's ``<!-- ledger:<lab> -->`` tables, both
rendered from the ledger's JSON (``docs/results/<lab>.json``, written by :mod:`dllabs.reporting.ledger`).

Each step shows the commit string its JSON holds, as it is (a ``-dirty`` mark included, with the hash of the
uncommitted changes when ``make reproduce --allow-dirty`` recorded one), its machine and when its runs finished.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from dllabs.labs import LABS, Metric, lab


def _cell(summary: dict[str, Any], metric: Metric) -> str:
    stats = summary.get(metric.label)
    if not stats:
        return "-"
    text = metric.show(stats["mean"])
    if stats.get("std") is not None:
        spread = metric.show(stats["std"]).rstrip("%")
        text += f" ± {spread}{'%' if metric.percent else ''} (n={stats['n']})"
    return text


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"


def _machine_line(machine_info: dict[str, Any] | None) -> str:
    if not machine_info:
        return "unknown machine"
    device = machine_info.get("gpu") or f"{machine_info.get('cpu')}, {machine_info.get('cores')} cores"
    threads = machine_info.get("omp_num_threads")
    return device + (f", OMP_NUM_THREADS={threads}" if threads else "")


def _commit_line(step: dict[str, Any]) -> str:
    """The step's commit as its JSON holds it, and the hash of the uncommitted changes it ran with."""
    text = f"Commit `{step.get('commit') or 'unknown'}`"
    if step.get("diff"):
        text += f" (uncommitted changes, diff sha256 `{step['diff']}`)"
    return text


def _metrics(ledger: dict[str, Any]) -> list[Metric]:
    return [m for m in lab(ledger["lab"]).metrics if m.label in ledger["metrics"]]


def render_lab(ledger: dict[str, Any]) -> str:
    """One lab's section of docs/results.md."""
    metrics = _metrics(ledger)
    lines = [f"## {ledger['title']}", ""]
    if ledger.get("quick"):
        lines += ["**Quick run (a few batches): these numbers check the pipeline, they are not results.**", ""]
    for step in ledger["steps"]:
        lines += [f"### `{step['step']}`", "", f"    {step['command']}", ""]
        lines.append(
            f"{_commit_line(step)}, {step.get('finished') or 'unknown date'}, "
            f"{_machine_line(step.get('machine'))}; step wall time {_seconds(step.get('seconds'))}."
        )
        if step.get("reference"):
            lines.append(f"Lab reference: {step['reference']}.")
        if step.get("note"):
            lines.append(f"Note: {step['note']}")
        lines.append("")
        if "layers" in step:
            lines += _render_layers(step["layers"])
        if "result" in step:
            lines += [f"- {key}: `{json.dumps(value)}`" if not isinstance(value, int) else f"- {key}: {value:,}"
                      for key, value in step["result"].items()]
            lines.append("")
        settings = step.get("settings", [])
        if settings:
            header = ["setting", "runs", *[m.label for m in metrics], "epochs", "wall time / run"]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
        details: list[str] = []
        for setting in settings:
            runs = setting["runs"]
            statuses = ", ".join(sorted({str(r["status"]) for r in runs}))
            epochs = sorted({r["epochs"] for r in runs if r["epochs"] is not None})
            walls = [r["wall_time_s"] for r in runs if r.get("wall_time_s")]
            lines.append(
                "| " + " | ".join([
                    f"`{setting['setting']}`", f"{len(runs)} ({statuses})",
                    *[_cell(setting["summary"], m) for m in metrics],
                    "/".join(str(e) for e in epochs) or "-", _seconds(statistics.fmean(walls) if walls else None),
                ]) + " |"
            )
            if len(runs) > 1 or any(r["status"] != "ok" for r in runs):
                for run in runs:
                    values = ", ".join(f"{m.label} {m.show(run['values'].get(m.label))}" for m in metrics[:2])
                    why = f" ({run['error']})" if run.get("error") else ""
                    details.append(
                        f"- job {run['run_dir']} `{' '.join(run['overrides'])}`: {run['status']}{why}; {values}"
                    )
        if settings:
            lines.append("")
        if details:
            lines += [*details, ""]
        if step.get("figure"):
            lines += [f"![{ledger['lab']} {step['step']}](results/{step['figure']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _render_layers(summary: dict[str, Any]) -> list[str]:
    rows = summary.get("layers") or summary.get("rows") or []
    if not rows:
        return ["```", json.dumps(summary, indent=2)[:2000], "```", ""]
    keys = [k for k in ("name", "params", "macs") if k in rows[0]] or list(rows[0])[:4]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f"{r.get(k):,}" if isinstance(r.get(k), int) else str(r.get(k)) for k in keys) + " |"
              for r in rows]
    return [*lines, ""]


def render_index(results_dir: Path) -> str:
    """docs/results.md from every lab JSON in ``results_dir``, in lab order."""
    parts = [
        "# Results ledger",
        "",
        "Written by `scripts/ledger.py` from the run folders of `make reproduce LAB=<lab>`; do not edit by hand.",
        "Each entry gives the command, the commit (`-dirty`: run with uncommitted changes to code or config) and",
        "machine it ran on, when its runs finished, and the lab's reference beside it.",
        "CIFAR-10 and IMDB numbers were measured on the offline copies in `../shared/data` (CIFAR test rows from",
        "1,000 on are re-encoded JPEGs: validation, 5k exact training images, is the headline; test accuracy is also",
        "given on the 1,000 exact rows).",
        "",
    ]
    present = [name for name in LABS if (results_dir / f"{name}.json").exists()]
    missing = [name for name in LABS if name not in present]
    for name in present:
        parts.append(render_lab(json.loads((results_dir / f"{name}.json").read_text())))
    if missing:
        parts.append("## Not recorded yet\n")
        parts += [f"- Lab {LABS[name].number}: {LABS[name].title}: no `make reproduce LAB={name}` run recorded."
                  for name in missing]
        parts.append("")
    return "\n".join(parts)


def write_index(results_dir: Path, index_file: Path) -> Path:
    index_file.write_text(render_index(results_dir))
    return index_file


README_BLOCK = re.compile(r"(<!-- ledger:(\w+) -->\n)(.*?)(<!-- /ledger -->)", re.DOTALL)


def _short_commit(commit: str | None) -> str:
    """A commit in 7 hex digits, its ``-dirty`` mark kept."""
    if not commit:
        return "unknown"
    head, dirty, _ = commit.partition("-dirty")
    return head[:7] + dirty


BRIEF_SETTINGS = 8  # a step with more settings than this (an Optuna search) shows only its best one in the README


def _best_setting(settings: list[dict[str, Any]], metric: Any) -> dict[str, Any]:
    """The setting whose mean of ``metric`` is highest (settings without it, e.g. pruned trials, come last)."""
    def mean(setting: dict[str, Any]) -> float:
        stats = setting["summary"].get(metric.label)
        return stats["mean"] if stats else float("-inf")

    return max(settings, key=mean)


def render_brief(ledger: dict[str, Any]) -> str:
    """A lab's results in a few rows for the README: the headline metrics of every setting and the reference."""
    spec = lab(ledger["lab"])
    metrics = _metrics(ledger)
    by_label = {m.label: m for m in metrics}
    metrics = [by_label[label] for label in spec.brief if label in by_label] if spec.brief else metrics[:2]
    header = ["step", "setting", "runs", *[m.label for m in metrics], "lab reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for step in ledger["steps"]:
        settings = step.get("settings", [])
        if len(settings) > BRIEF_SETTINGS and metrics:  # a search: its best setting stands for it (all in results.md)
            settings = [_best_setting(settings, metrics[0])]
        for number, setting in enumerate(settings):
            runs = setting["runs"]
            statuses = ", ".join(sorted({str(r["status"]) for r in runs}))
            label = f"`{setting['setting']}`"
            if len(step.get("settings", [])) > len(settings):
                label = f"best of {len(step['settings'])}: {label}"
            lines.append("| " + " | ".join([
                f"`{step['step']}`" if number == 0 else "", label, f"{len(runs)} ({statuses})",
                *[_cell(setting["summary"], m) for m in metrics], (step.get("reference") or "") if number == 0 else "",
            ]) + " |")
    commits = sorted({_short_commit(s.get("commit")) for s in ledger["steps"]})
    lines.append("")
    lines.append(f"From the [results ledger](docs/results.md) (commit {', '.join(commits)}; command, machine, "
                 "per-seed numbers and figures there).")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, results_dir: Path) -> bool:
    """Regenerate the README's ``<!-- ledger:<lab> -->`` blocks from the ledger; True when the file changed."""
    text = readme.read_text()

    def block(match: re.Match) -> str:
        lab_file = results_dir / f"{match.group(2)}.json"
        body = (render_brief(json.loads(lab_file.read_text())) if lab_file.exists()
                else f"Not recorded yet: `make reproduce LAB={match.group(2)}` writes it.\n")
        return match.group(1) + body + match.group(4)

    new = README_BLOCK.sub(block, text)
    if new != text:
        readme.write_text(new)
    return new != text
