"""The results ledger: every number the README quotes, taken from recorded runs of ``scripts/reproduce.py``.

One JSON per lab (``docs/results/<lab>.json``) is written from the run folders of ``make reproduce LAB=<lab>``
(``outputs/reproduce/<lab>/<step>/``) and the step log ``reproduce.json`` (command, commit, machine, date of each
step). ``docs/results.md`` is rendered from all lab JSONs, with each lab's reference number beside its results.

Per setting (one run, or the runs of a sweep that differ only by ``seed``): the command, each metric's mean and
spread (sample std over seeds), epochs, wall time, status of every run. A run that diverged or failed is listed
as such and kept out of the means.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

from dllabs.errors import ConfigError
from dllabs.runs import RunFolder, Sweep

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Metric:
    """A number shown in the ledger: ``path`` into metrics.json (``a.b``; keys may hold ``/``), how to show it."""

    label: str
    path: str
    fmt: str = "{:.4f}"
    percent: bool = False

    def read(self, record: dict[str, Any]) -> float | None:
        node: Any = record
        path = self.path
        while path and isinstance(node, dict):
            if path in node:  # the rest is one key (``val/ppl``)
                node, path = node[path], ""
            else:
                head, _, path = path.partition(".")
                node = node.get(head)
        if path:
            node = None
        return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        if not math.isfinite(value):
            return str(value)
        return f"{100 * value:.2f}%" if self.percent else self.fmt.format(value)


ACC = [
    Metric("best val acc", "best_score", percent=True),
    Metric("test acc", "metrics.test/acc", percent=True),
    Metric("train acc", "metrics.train/acc", percent=True),
]


@dataclass
class LabLedger:
    """What the ledger shows for one lab: its title, metrics, and the lab's reference per step."""

    title: str
    metrics: list[Metric]
    references: dict[str, str]
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # step -> file inside the step folder
    extra: Callable[[Path], dict[str, Any]] | None = None  # per-run extra numbers (e.g. exact-row test accuracy)
    brief: list[str] | None = None  # metric labels of the README's brief table (default: the first two)


def _cifar_exact_rows(run_dir: Path) -> dict[str, Any]:
    """Test accuracy of the run's best checkpoint on the exact and on the JPEG-re-encoded CIFAR test rows.

    Only for the shared offline copy of CIFAR-10, whose ``test_lossless_mask.npy`` marks the exact rows; the
    mask belongs to that copy of the data, so nothing is computed without it.
    """
    import numpy as np
    import torch

    from dllabs.entry import silence_lightning_tips
    from dllabs.predicting import predict_probabilities
    from dllabs.runs import load_run_config, restore_run

    silence_lightning_tips()

    cfg = load_run_config(run_dir)
    batches = Path(cfg.paths.data_dir) / "cifar-10-batches-py"
    mask_file = batches / "test_lossless_mask.npy"
    if not mask_file.exists():
        return {}
    run = restore_run(run_dir)
    data = run.datamodule.prediction_data(input=str(batches / "test_batch"), text=None)
    if data.labels is None:
        return {}
    probabilities = predict_probabilities(run.task, data.loader, "cpu")
    correct = (probabilities.argmax(1) == torch.as_tensor(data.labels)).numpy()
    mask = np.load(mask_file, allow_pickle=False).astype(bool)
    return {
        "test_acc_exact_rows": float(correct[mask].mean()),
        "test_acc_jpeg_rows": float(correct[~mask].mean()),
        "exact_rows": int(mask.sum()),
    }


CIFAR_EXTRA = [
    Metric("test acc, 1k exact rows", "extra.test_acc_exact_rows", percent=True),
    Metric("test acc, 9k JPEG rows", "extra.test_acc_jpeg_rows", percent=True),
]

LABS: dict[str, LabLedger] = {
    "lms": LabLedger(
        title="Lab 1: LMS adaptive filter",
        metrics=[
            Metric("final MSE", "metrics.val/mse", "{:.4e}"),
            Metric("Wiener MSE floor", "results.wiener_mse", "{:.4e}"),
            Metric("distance to W*", "results.distance_to_wiener", "{:.2e}"),
            Metric("2/lambda_max", "results.stability_bound", "{:.3f}"),
            Metric("2/trace(R)", "results.mean_square_bound", "{:.3f}"),
        ],
        references={
            "reference": "W* = [1.00068, 1.00061, -2.00032], MSE floor 1.008e-4 (plain mean) on the lab's dataset",
            "rates": "r = 0.005 ... 0.5 converge, r = 1 diverges (the run must say so)",
        },
        figures={"reference": "lms_mse.png", "rates": "lms_sweep.png"},
    ),
    "layers": LabLedger(
        title="Lab 2: layer analysis (SimpleNN-3)",
        metrics=[],
        references={
            "simplenn3": "conv1 1,200 params / 1,228,800 MACs; conv2 2,304 / 665,856; conv3 25,088 / 903,168; "
            "fc1 9,216 / 9,216; fc2 320 / 320 (weights only)",
        },
    ),
    "simplenn": LabLedger(
        title="Lab 3: SimpleNN on CIFAR-10",
        metrics=ACC + CIFAR_EXTRA,
        references={"fixed_lr": "~66% val (train ~90%)", "step_decay": "~67% val"},
        figures={"fixed_lr": "report_curves.png", "step_decay": "report_curves.png"},
        extra=_cifar_exact_rows,
    ),
    "robust": LabLedger(
        title="Lab 4: a more robust CIFAR-10 pipeline",
        metrics=ACC,
        references={
            "augment": "aug on ~70-71% val",
            "batchnorm": "+BN ~71-72% val; BN should allow lr 0.1",
            "activation": "+Swish ~73% val",
            "lr": "best lr ~0.01-0.05; lr 1.0 fails (recorded as failed/diverged)",
            "l2": "L2 sweep 1e-2 ... 0 at lr 0.01",
            "l1_vs_l2": "L1 ~71.7% vs L2 ~71.2% val",
            "best": ">= 70% val (target), aim 75%",
        },
        figures={
            **{study: "report_curves.png" for study in ("augment", "batchnorm", "activation", "lr", "l2")},
            "best": "curves.png", "l1_vs_l2": "weights.png",
        },
    ),
    "resnet20": LabLedger(
        title="Lab 5: ResNet-20 on CIFAR-10",
        metrics=ACC + CIFAR_EXTRA,
        references={"reference": "paper 91.25% test; public re-runs 91.5-92.4%", "fast": ">= 91.25% val in <= 60 epochs"},
        extra=_cifar_exact_rows,
        figures={"reference": "curves.png", "fast": "curves.png"},
        brief=["best val acc", "test acc", "test acc, 1k exact rows"],
    ),
    "imdb": LabLedger(
        title="Lab 6: LSTM sentiment on IMDB",
        metrics=[
            Metric("test acc", "metrics.test/acc", percent=True),
            Metric("best val acc", "best_score", percent=True),
            Metric("train acc", "metrics.train/acc", percent=True),
        ],
        references={
            "reference": "~86.4-87.3% test",
            "reference_normal_init": "~86.4-87.3% test (the lab initialises as its template does: the reference step)",
            "strong": "should beat the reference (aim >= 89%)",
        },
        figures={"strong": "curves.png"},
    ),
    "gpt2": LabLedger(
        title="Lab 7: GPT-2 fine-tuning on WikiText-2",
        metrics=[
            Metric("val ppl", "metrics.val/ppl", "{:.2f}"),
            Metric("test ppl", "metrics.test/ppl", "{:.2f}"),
            Metric("val ppl before", "results.perplexity.val_before", "{:.2f}"),
            Metric("test ppl, lab's NLL/mask count", "metrics.test/ppl_lab_maskcount", "{:.2f}"),
            Metric("optimiser steps", "results.train_steps", "{:.0f}"),
            Metric("tokens/s", "results.tokens_per_s", "{:,.0f}"),
            Metric("tokens/s incl. padding", "results.padded_tokens_per_s", "{:,.0f}"),
            Metric("trainable params", "results.params.trainable", "{:,.0f}"),
        ],
        references={
            "full_vs_lora": "10% val slice: pretrained 43.0 -> full 27.1, LoRA 30.3; A100: full 12 min, LoRA 9 min",
            "small_full_vs_lora": "none (the lab starts from the pretrained gpt2, this from a random 2-layer GPT-2); "
            "the lab's schedule is 459 steps an epoch, 1,377 in all, on the train split",
            "small_protocols": "lab pads every line to 1024; dynamic pads per batch; packed has no padding",
            "lora_params": "2,359,296 for r 64 on c_attn of gpt2 (124M)",
        },
        figures={"full_vs_lora": "lm_compare.png", "small_full_vs_lora": "lm_compare.png"},
        brief=["val ppl before", "val ppl", "optimiser steps", "tokens/s"],
    ),
}


def machine() -> dict[str, Any]:
    """The machine this process runs on: CPU model, cores, GPU (when torch sees one), torch version."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        info["gpu"] = None
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    return info


def git_commit(root: Path = ROOT) -> str | None:
    """``HEAD``'s hash, with ``-dirty`` when tracked files differ from it; None outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


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


def _run_entry(run: RunFolder, lab: LabLedger, step_overrides: set[str]) -> dict[str, Any]:
    record = dict(run.record)
    if lab.extra is not None and run.status == "ok":
        record["extra"] = lab.extra(run.path)
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
        "values": {m.label: m.read(record) for m in lab.metrics},
    }


def _summary(runs: list[dict[str, Any]], metrics: list[Metric]) -> dict[str, Any]:
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


def _step_command(step: dict[str, Any]) -> str:
    return step.get("command", "")


def build_lab(lab: str, lab_dir: Path, out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Collect ``lab_dir``'s steps into the lab's ledger dict and write ``<out_dir>/<lab>.json`` (+ figures)."""
    spec = LABS[lab]
    state = json.loads((lab_dir / "reproduce.json").read_text()) if (lab_dir / "reproduce.json").exists() else {}
    figures_dir = out_dir / "figures"
    settings = []
    for step_name, step in state.items():
        step_dir = lab_dir / step_name
        entry: dict[str, Any] = {
            "step": step_name,
            "command": _step_command(step),
            "status": step.get("status"),
            "commit": step.get("commit"),
            "machine": step.get("machine"),
            "finished": step.get("finished"),
            "seconds": step.get("seconds"),
            "reference": spec.references.get(step_name),
            "note": step.get("note"),
        }
        if step.get("kind") == "report":
            summary = step_dir / "layer_analysis.json"
            if summary.exists():
                entry["layers"] = json.loads(summary.read_text())
            elif (step_dir / "result.json").exists():  # a report whose numbers are a result (scripts/lora_params.py)
                entry["result"] = json.loads((step_dir / "result.json").read_text())
            elif step_name not in spec.references:
                continue  # a report step (tables, figures) whose output is linked below, not a result
        else:
            step_overrides = {_meaning(o) for o in step.get("overrides", [])}
            try:
                runs = [_run_entry(run, spec, step_overrides) for run in Sweep(step_dir)]
            except ConfigError:  # the step made no run folder (it failed before its first job started)
                runs = []
            entry["settings"] = [
                {"setting": key or "(as in the command)", "runs": group, "summary": _summary(group, spec.metrics)}
                for key, group in _group_by_setting(runs)
            ]
        figure = spec.figures.get(step_name)
        if figure and (step_dir / figure).exists():
            figures_dir.mkdir(parents=True, exist_ok=True)
            target = figures_dir / f"{lab}-{step_name}.png"
            shutil.copyfile(step_dir / figure, target)
            entry["figure"] = f"figures/{target.name}"
        settings.append(entry)
    ledger = {
        "lab": lab,
        "title": spec.title,
        "quick": quick,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "metrics": [m.label for m in spec.metrics],
        "notes": spec.notes,
        "steps": settings,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{lab}.json").write_text(json.dumps(ledger, indent=2, allow_nan=True) + "\n")
    return ledger


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


def render_lab(ledger: dict[str, Any]) -> str:
    """One lab's section of docs/results.md."""
    metrics = [m for m in LABS[ledger["lab"]].metrics if m.label in ledger["metrics"]]
    lines = [f"## {ledger['title']}", ""]
    if ledger.get("quick"):
        lines += ["**Quick run (a few batches): these numbers check the pipeline, they are not results.**", ""]
    for step in ledger["steps"]:
        lines.append(f"### `{step['step']}`")
        lines.append("")
        lines.append(f"    {step['command']}")
        lines.append("")
        lines.append(
            f"Commit `{(step.get('commit') or 'unknown')[:12]}`, {step.get('finished') or 'unknown date'}, "
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
    for note in ledger.get("notes", []):
        lines.append(f"- {note}")
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
        "Each entry gives the command, the commit and machine it ran on, and the lab's reference beside it.",
        "CIFAR-10 and IMDB numbers were measured on the offline copies in `../shared/data` (CIFAR test rows from",
        "1,000 on are re-encoded JPEGs: validation, 5k exact training images, is the headline; test accuracy is also",
        "given on the 1,000 exact rows).",
        "",
    ]
    present = [lab for lab in LABS if (results_dir / f"{lab}.json").exists()]
    missing = [lab for lab in LABS if lab not in present]
    for lab in present:
        parts.append(render_lab(json.loads((results_dir / f"{lab}.json").read_text())))
    if missing:
        parts.append("## Not recorded yet\n")
        parts += [f"- {LABS[lab].title}: no `make reproduce LAB={lab}` run recorded." for lab in missing]
        parts.append("")
    return "\n".join(parts)


def write_index(results_dir: Path, index_file: Path) -> Path:
    index_file.write_text(render_index(results_dir))
    return index_file


README_BLOCK = re.compile(r"(<!-- ledger:(\w+) -->\n)(.*?)(<!-- /ledger -->)", re.DOTALL)


def render_brief(ledger: dict[str, Any]) -> str:
    """A lab's results in a few rows for the README: the headline metrics of every setting and the reference."""
    spec = LABS[ledger["lab"]]
    metrics = [m for m in spec.metrics if m.label in ledger["metrics"]]
    by_label = {m.label: m for m in metrics}
    metrics = [by_label[label] for label in spec.brief if label in by_label] if spec.brief else metrics[:2]
    header = ["step", "setting", "runs", *[m.label for m in metrics], "lab reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for step in ledger["steps"]:
        for number, setting in enumerate(step.get("settings", [])):
            runs = setting["runs"]
            statuses = ", ".join(sorted({str(r["status"]) for r in runs}))
            lines.append("| " + " | ".join([
                f"`{step['step']}`" if number == 0 else "", f"`{setting['setting']}`", f"{len(runs)} ({statuses})",
                *[_cell(setting["summary"], m) for m in metrics], (step.get("reference") or "") if number == 0 else "",
            ]) + " |")
    commits = sorted({(s.get("commit") or "unknown")[:7] for s in ledger["steps"]})
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
