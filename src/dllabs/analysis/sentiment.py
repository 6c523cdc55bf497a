"""Analysis of a finished sentiment run: accuracy, confusion matrix, and the most confident mistakes.

The run is rebuilt from its own saved config and best checkpoint (``dllabs.runs``), so the analysis uses the
exact data settings and vocabulary the model was trained with.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from dllabs.errors import ConfigError, run_command
from dllabs.reporting.table import show_table

SPLITS = ("val", "test")


@dataclass
class Mistake:
    """One wrongly classified review: its position in the split, classes, the model's confidence, text."""

    index: int
    true: str
    predicted: str
    confidence: float
    text: str


@dataclass
class SentimentReport:
    split: str
    checkpoint: str
    count: int
    accuracy: float
    classes: list[str]
    confusion: list[list[int]]
    mistakes: list[Mistake]
    figure: str
    mistakes_file: str
    summary_file: str


def most_confident_mistakes(probabilities: torch.Tensor, labels: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` wrong predictions with the highest probability on the predicted class."""
    confidence, predicted = probabilities.max(dim=1)
    wrong = torch.nonzero(predicted != labels).flatten()
    order = torch.argsort(confidence[wrong], descending=True, stable=True)
    return wrong[order][:k].tolist()


def confusion_counts(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Counts with true classes as rows and predicted classes as columns."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    return multiclass_confusion_matrix(predicted, labels, num_classes=num_classes).tolist()


def analyse_run(
    run_dir: str | Path,
    split: str = "test",
    top_k: int = 10,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    overrides: Sequence[str] = (),
) -> SentimentReport:
    """Predict ``split`` with the run's best checkpoint; write the figure, mistakes CSV and summary JSON."""
    from dllabs.class_predictions import predict_probabilities, save_confusion_matrix
    from dllabs.runs import restore_run

    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    run = restore_run(run_dir, overrides)
    datamodule, task = run.datamodule, run.task
    if not hasattr(datamodule, "review_texts"):
        raise ConfigError(f"{run_dir} is not a sentiment run (its data is {type(datamodule).__name__})")
    datamodule.setup("test")

    out = Path(out_dir) if out_dir else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    probabilities = predict_probabilities(task, loader, accelerator, out)
    dataset = datamodule.datasets[split]
    labels = torch.as_tensor(dataset.labels[dataset.indices], dtype=torch.int64)
    predicted = probabilities.argmax(dim=1)
    classes = [str(name) for name in datamodule.classes]

    texts = datamodule.review_texts(split)
    mistakes = [
        Mistake(
            i, classes[int(labels[i])], classes[int(predicted[i])], float(probabilities[i].max()), texts[i]
        )
        for i in most_confident_mistakes(probabilities, labels, top_k)
    ]
    figure = save_confusion_matrix(
        labels, predicted, classes, out / f"sentiment_{split}_confusion_matrix.png"
    )
    mistakes_file = out / f"sentiment_{split}_mistakes.csv"
    with open(mistakes_file, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["index", "true", "predicted", "confidence", "text"])
        writer.writeheader()
        writer.writerows(asdict(m) for m in mistakes)
    report = SentimentReport(
        split=split,
        checkpoint=str(run.checkpoint),
        count=len(labels),
        accuracy=float((predicted == labels).float().mean()),
        classes=classes,
        confusion=confusion_counts(labels, predicted, len(classes)),
        mistakes=mistakes,
        figure=str(figure),
        mistakes_file=str(mistakes_file),
        summary_file=str(out / f"sentiment_{split}.json"),
    )
    Path(report.summary_file).write_text(json.dumps(asdict(report), indent=2))
    return report


def show_report(report: SentimentReport, width: int = 160) -> None:
    """Print accuracy, the confusion matrix as a table, and the mistakes with shortened texts."""
    print(f"{report.split} accuracy: {report.accuracy:.2%} on {report.count} reviews ({report.checkpoint})")
    confusion = pd.DataFrame(report.confusion, index=report.classes, columns=report.classes)
    show_table(confusion.rename_axis("true \\ predicted"), index=True)
    lines = [f"{len(report.mistakes)} most confident mistakes:"]
    for m in report.mistakes:
        text = " ".join(m.text.split())
        text = text if len(text) <= width else text[: width - 3] + "..."
        lines.append(f"  #{m.index} true {m.true}, said {m.predicted} ({m.confidence:.1%}): {text}")
    lines += [
        "",
        f"figure: {report.figure}",
        f"mistakes: {report.mistakes_file}",
        f"summary: {report.summary_file}",
    ]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/sentiment_report.py RUN_DIR [--split test|val] [--top-k K] [--out DIR] [overrides...]``."""
    parser = argparse.ArgumentParser(
        prog="sentiment_report.py",
        description="Accuracy, confusion matrix figure and most confident mistakes of a finished IMDB run.",
    )
    parser.add_argument("run_dir", type=Path, help="a run folder made by train.py with data=imdb")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--top-k", type=int, default=10, help="how many confident mistakes to list")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the files (default: the run folder)"
    )
    parser.add_argument("--accelerator", default="auto", help="auto | cpu | gpu")
    parser.add_argument(
        "overrides", nargs="*", help="dotlist changes to the run's config, e.g. data.data_dir=/x"
    )
    args = parser.parse_args(argv)
    return run_command(
        lambda: show_report(analyse_run(args.run_dir, args.split, args.top_k, args.out, args.accelerator, args.overrides))
    )
