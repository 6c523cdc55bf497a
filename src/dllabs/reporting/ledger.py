"""The results ledger's JSON: one file per lab (``docs/results/<lab>.json``), collected from recorded runs.

Written from the run folders of ``make reproduce LAB=<lab>`` (``outputs/reproduce/<lab>/<step>/``) and its step log
``reproduce.json`` (command, commit, machine of each step); what a lab's steps are, their references and figures and
the lab's metrics come from the lab registry (:mod:`dllabs.labs`). ``dllabs.reporting.ledger_markdown`` renders
``docs/results.md`` and the README's tables from these files.

Per setting (one run, or the runs of a sweep that differ only by ``seed``): the command, each metric's mean and
spread (sample std over seeds), epochs, wall time, status of every run. A run that diverged or failed is listed
as such and kept out of the means. A step's ``finished`` is its runs' own time (when their ``metrics.json`` was
written), so rebuilding the ledger never moves it.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from functools import cache
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from dllabs.errors import ConfigError
from dllabs.labs import Lab, Metric, lab
from dllabs.runs import RunFolder, Sweep


@cache
def _override_parser() -> OverridesParser:
    return OverridesParser.create()


def _meaning(override: str) -> str:
    """An override by what it sets: Hydra's sweeper stores a job's overrides with special characters escaped
    (``${oc.env:X}`` as ``$\\{oc.env\\:X\\}``), which must still equal the step's override as typed."""
    try:
        parsed = _override_parser().parse_override(override)
    except OverrideParseException:
        return override
    return f"{parsed.get_key_element()}={parsed.value()!r}"


def _run_entry(run: RunFolder, spec: Lab, step_overrides: set[str]) -> dict[str, Any]:
    record = dict(run.record)
    if spec.extra is not None and run.status == "ok":
        record["extra"] = spec.extra(run.path)
    overrides = [
        o for o in run.overrides
        if _meaning(o) not in step_overrides and not o.startswith(("hydra.", "ckpt_path=", "callbacks.progress_bar="))
    ]
    return {
        "run_dir": run.name,
        "overrides": overrides,
        "status": run.status,
        "error": run.error,
        "epochs": run.epochs_completed,
        "best_epoch": run.best_epoch,
        "wall_time_s": run.wall_time_s,
        "values": {m.label: m.read(record) for m in spec.metrics},
    }


def _summary(runs: list[dict[str, Any]], metrics: tuple[Metric, ...]) -> dict[str, Any]:
    ok = [r for r in runs if r["status"] == "ok"]
    out: dict[str, Any] = {}
    for metric in metrics:
        values = [r["values"][metric.label] for r in ok if r["values"].get(metric.label) is not None]
        if values:
            out[metric.label] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "n": len(values),
            }
    return out


def _group_by_setting(runs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Runs that differ only by ``seed`` form one setting; order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        key = " ".join(o for o in run["overrides"] if not o.startswith("seed="))
        groups.setdefault(key, []).append(run)
    return list(groups.items())


def _finished(files: list[Path]) -> str | None:
    """When the last of ``files`` (a step's own records) was written, as the step log writes times."""
    times = [file.stat().st_mtime for file in files if file.is_file()]
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(max(times))) if times else None


def _kept_steps(ledger_file: Path, spec: Lab, quick: bool) -> dict[str, dict[str, Any]]:
    """The steps the lab's ledger already records (for a rebuild from a step log that lacks them)."""
    if not ledger_file.exists():
        return {}
    previous = json.loads(ledger_file.read_text())
    if bool(previous.get("quick")) != quick:
        return {}
    return {spec.step(entry["step"]).name: entry for entry in previous.get("steps", [])}


def build_lab(name: str, lab_dir: Path, out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Collect ``lab_dir``'s steps into the lab's ledger dict and write ``<out_dir>/<lab>.json`` (+ figures).

    Steps the ledger recorded before and ``lab_dir``'s step log does not hold (their runs were made in another
    folder or on another machine) are kept as recorded. Steps are in the lab's order. A step that the lab does
    not have is a :class:`ConfigError`."""
    spec = lab(name)
    state = json.loads((lab_dir / "reproduce.json").read_text()) if (lab_dir / "reproduce.json").exists() else {}
    figures_dir = out_dir / "figures"
    entries = _kept_steps(out_dir / f"{name}.json", spec, quick)
    for step_name, logged in state.items():
        step = spec.step(step_name)
        step_dir = lab_dir / step_name
        entry: dict[str, Any] = {
            "step": step_name,
            "command": logged.get("command", ""),
            "status": logged.get("status"),
            "commit": logged.get("commit"),
            "diff": logged.get("diff"),
            "machine": logged.get("machine"),
            "finished": logged.get("finished"),
            "seconds": logged.get("seconds"),
            "reference": step.reference,
            "note": logged.get("note"),
        }
        own: list[Path] = []  # the files the step wrote, whose time is the step's
        if step.kind == "report":
            summary = step_dir / "layer_analysis.json"
            result = step_dir / "result.json"  # a report whose numbers are a result (scripts/lora_params.py)
            if summary.exists():
                entry["layers"] = json.loads(summary.read_text())
                own.append(summary)
            elif result.exists():
                entry["result"] = json.loads(result.read_text())
                own.append(result)
            elif step.reference is None:
                entries.pop(step_name, None)
                continue  # a report step (tables, figures) whose output is linked below, not a result
        else:
            step_overrides = {_meaning(o) for o in logged.get("overrides", [])}
            try:
                runs = list(Sweep(step_dir))
            except ConfigError:  # the step made no run folder (it failed before its first job started)
                runs = []
            own += [run.path / "metrics.json" for run in runs]
            entry["settings"] = [
                {"setting": key or "(as in the command)", "runs": group, "summary": _summary(group, spec.metrics)}
                for key, group in _group_by_setting([_run_entry(run, spec, step_overrides) for run in runs])
            ]
        entry["finished"] = _finished(own) or entry["finished"]
        if step.figure and (step_dir / step.figure).exists():
            figures_dir.mkdir(parents=True, exist_ok=True)
            target = figures_dir / f"{name}-{step_name}.png"
            shutil.copyfile(step_dir / step.figure, target)
            entry["figure"] = f"figures/{target.name}"
        entries[step_name] = entry
    ledger = {
        "lab": name,
        "title": f"Lab {spec.number}: {spec.title}",
        "quick": quick,
        "metrics": [m.label for m in spec.metrics],
        "steps": [entries[step.name] for step in spec.steps if step.name in entries],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(ledger, indent=2, allow_nan=True) + "\n")
    return ledger
