"""Side-by-side report of language-model runs (full vs LoRA fine-tuning): perplexity before/after, cost, samples.

Input: a multirun folder (its numbered job folders) or any run folders made by ``train.py`` with a
``LanguageModelTask`` (each holds ``metrics.json`` with ``results`` from ``LanguageModelTask.run_results``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dllabs.errors import ConfigError
from dllabs.reporting.table import markdown, show_table
from dllabs.runs import RunFolder, Sweep


@dataclass
class LMRun:
    """One run folder's metrics.json, labelled by what distinguishes it (its sweep overrides or fine-tuning)."""

    folder: Path
    label: str
    status: str
    wall_time_s: float | None
    results: dict[str, Any] = field(default_factory=dict)


def _label(run: RunFolder) -> str:
    swept = [item for item in run.overrides if item.startswith("finetune=")]
    if swept:
        return swept[0].split("=", 1)[1]
    return str(run.results.get("finetune") or run.name)


def find_run_folders(paths: Sequence[str | Path]) -> list[RunFolder]:
    """Finished run folders in ``paths``: each path is a run folder or a folder of run folders (a multirun)."""
    found: list[RunFolder] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise ConfigError(f"{path} does not exist; pass a multirun folder or run folders made by train.py")
        try:
            runs = [run for run in Sweep(path) if (run.path / "metrics.json").is_file()]
        except ConfigError:
            runs = []
        if not runs:
            raise ConfigError(f"{path} holds no run folder with metrics.json; is the sweep finished?")
        found += [run for run in runs if run not in found]
    return found


def load_runs(paths: Sequence[str | Path]) -> list[LMRun]:
    runs = []
    for folder in find_run_folders(paths):
        if "perplexity" not in folder.results:
            raise ConfigError(f"{folder.path} is not a language-model run (no perplexity in metrics.json results)")
        runs.append(LMRun(folder.path, _label(folder), folder.status, folder.wall_time_s, folder.results))
    labels = [run.label for run in runs]
    for run in runs:
        if labels.count(run.label) > 1:
            run.label = f"{run.label} ({run.folder.name})"
    return runs


def _number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _series(values: Sequence[float] | None, digits: int = 3) -> str:
    return " / ".join(_number(float(v), digits) for v in values or []) or "-"


def _cells(run: LMRun) -> dict[str, str]:
    """One run's column of the table (``-`` where the run did not record a value)."""
    results = run.results
    ppl = results.get("perplexity") or {}
    params = results.get("params") or {}
    losses = results.get("loss_per_epoch") or {}
    data = results.get("data") or {}
    splits = data.get("splits") or {}
    trainable = params.get("trainable")
    return {
        "status": run.status,
        "fine-tuning": str(results.get("finetune", "-")),
        "trainable params": "-" if trainable is None
        else f"{trainable:,} ({params.get('trainable_percent', math.nan):.2f}%)",
        "total params": _number(params.get("total")),
        "val ppl before": _number(ppl.get("val_before")),
        "val ppl after": _number(ppl.get("val_after")),
        "val ppl best": _number(ppl.get("val_best")),
        "test ppl (best ckpt)": _number(ppl.get("test")),
        "test ppl sliding": _number(ppl.get("test_sliding")),
        "train loss / epoch": _series(losses.get("train")),
        "val loss / epoch": _series(losses.get("val")),
        "fit wall time (s)": _number(results.get("fit_wall_time_s"), 1),
        "run wall time (s)": _number(run.wall_time_s, 1),
        "train tokens/s": _number(results.get("tokens_per_s"), 0),
        "incl. padding tokens/s": _number(results.get("padded_tokens_per_s"), 0),
        "peak memory (MB)": f"{_number(results.get('peak_memory_mb'), 0)} ({results.get('peak_memory_kind', '-')})",
        "data": "-" if not data else (f"{data.get('protocol')}, block {data.get('block_size')}, fraction "
                                      f"{data.get('fraction')}, train={splits.get('train')}, val={splits.get('val')}"),
    }


def comparison_table(runs: Sequence[LMRun]) -> pd.DataFrame:
    """One row per measure, one column per run (``-`` where the run did not record a value)."""
    return pd.DataFrame({run.label: _cells(run) for run in runs}).rename_axis("")


def format_samples(runs: Sequence[LMRun]) -> str:
    """Generated text of every run, grouped by prompt."""
    prompts: list[str] = []
    for run in runs:
        for sample in run.results.get("samples") or []:
            if sample["prompt"] not in prompts:
                prompts.append(sample["prompt"])
    blocks = []
    for prompt in prompts:
        block = [f"### {prompt!r}"]
        for run in runs:
            texts = [s["text"] for s in run.results.get("samples") or [] if s["prompt"] == prompt] or ["-"]
            block += [f"- **{run.label}**: {' '.join(text.split())}" for text in texts]
        blocks.append("\n".join(block))
    return "\n\n".join(blocks) or "(no samples: the runs were trained with callbacks.text_samples.prompts=[])"


def plot_perplexity(runs: Sequence[LMRun], path: Path) -> Path:
    """Validation perplexity per epoch (epoch 0 = before training) of every run, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        ppl = run.results["perplexity"]
        values = ([ppl["val_before"]] if ppl.get("val_before") is not None else []) + list(ppl.get("val_per_epoch") or [])
        start = 0 if ppl.get("val_before") is not None else 1
        ax.plot(range(start, start + len(values)), values, marker="o", label=run.label)
    ax.set_xlabel("epoch (0 = before training)")
    ax.set_ylabel("validation perplexity")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(
    paths: Sequence[str | Path], out: str | Path | None = None, show: bool = False
) -> tuple[str, list[Path]]:
    """The markdown report of ``paths``; written with its figure to ``out`` (default: a single multirun folder).
    With ``show``, the table and the samples are printed."""
    runs = load_runs(paths)
    table = comparison_table(runs)
    samples = format_samples(runs)
    if show:
        show_table(table, title="Language-model runs", index=True)
        print("\nGenerated text\n\n" + samples)
    text = "# Language-model runs\n\n" + markdown(table, index=True) + "\n\n## Generated text\n\n" + samples + "\n"
    if out is None and len(paths) == 1 and not (Path(paths[0]) / "metrics.json").is_file():
        out = paths[0]
    written: list[Path] = []
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lm_compare.md").write_text(text)
        written = [folder / "lm_compare.md", plot_perplexity(runs, folder / "lm_compare.png")]
    return text, written
