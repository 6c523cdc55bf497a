"""``predict.py``: rebuild a finished run from its own config, predict user inputs, write ``predictions.csv``.

The run's datamodule turns ``input=<path>`` or ``text="..."`` into a :class:`~dllabs.data.prediction.PredictionData`
(its ``prediction_data`` hook); the run's task gives class probabilities (``predict_step``). The CSV has one
row per input in input order: ``Id,Label`` (``Label`` = class index), plus ``File`` when the inputs were files
and ``Probability,Text`` for text inputs. When the inputs carry labels, accuracy, a per-class table and a
confusion-matrix figure are reported too. Beside the CSV, ``<name>_summary.json`` holds what was predicted
(run, checkpoint, input, counts per class; accuracy and the per-class table for labelled inputs).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig

from dllabs.class_predictions import predict_probabilities, save_confusion_matrix
from dllabs.data.prediction import PredictionData
from dllabs.entry import hydra_main
from dllabs.errors import ConfigError
from dllabs.reporting.table import show_table

log = logging.getLogger("dllabs")


def write_predictions(
    path: Path, data: PredictionData, predicted: torch.Tensor, probabilities: torch.Tensor
) -> Path:
    """``Id,Label`` rows in input order; ``File`` for named inputs; ``Probability,Text`` for texts."""
    numbered = data.ids == [str(i) for i in range(len(data.ids))]
    header = ["Id", "Label"] + ([] if numbered else ["File"])
    if data.texts is not None:
        header += ["Probability", "Text"]
    confidence = probabilities.gather(1, predicted[:, None])[:, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, label in enumerate(predicted.tolist()):
            row: list[Any] = [i, label] + ([] if numbered else [data.ids[i]])
            if data.texts is not None:
                row += [f"{confidence[i].item():.6f}", data.texts[i]]
            writer.writerow(row)
    return path


def per_class_table(
    labels: torch.Tensor, predicted: torch.Tensor, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Support, correct, recall (per-class accuracy) and precision of each class."""
    rows = []
    for index, name in enumerate(names):
        is_class, said_class = labels == index, predicted == index
        correct = int((is_class & said_class).sum())
        support, claimed = int(is_class.sum()), int(said_class.sum())
        rows.append(
            {
                "class": name,
                "support": support,
                "correct": correct,
                "recall": correct / support if support else float("nan"),
                "precision": correct / claimed if claimed else float("nan"),
            }
        )
    return rows


def show_class_table(rows: list[dict[str, Any]], accuracy: float, count: int) -> None:
    """Print the per-class table with an ``all`` row (recall of all = accuracy)."""
    total = {"class": "all", "support": count, "correct": round(accuracy * count), "recall": accuracy,
             "precision": float("nan")}
    frame = pd.DataFrame([*rows, total]).rename(columns={"recall": "accuracy"})
    for column in ("accuracy", "precision"):
        frame[column] = [f"{v:.2%}" if math.isfinite(v) else "-" for v in frame[column]]
    show_table(frame)


def class_names(datamodule, count: int) -> list[str]:
    names = getattr(datamodule, "classes", None)
    return (
        [str(n) for n in names]
        if names is not None and len(names) == count
        else [str(i) for i in range(count)]
    )


def report_labelled(
    data: PredictionData, predicted: torch.Tensor, names: Sequence[str], output: Path
) -> dict[str, Any] | None:
    """Print accuracy and the per-class table, save the confusion matrix; None when no input has a label."""
    if data.labels is None:
        return None
    labels = torch.as_tensor(data.labels).long().cpu()
    known = labels >= 0
    if not known.any():
        return None
    labels, predicted = labels[known], predicted[known]
    accuracy = float((labels == predicted).float().mean())
    rows = per_class_table(labels, predicted, names)
    print(f"accuracy on the {int(known.sum())} labelled inputs: {accuracy:.2%}")
    show_class_table(rows, accuracy, int(known.sum()))
    figure = save_confusion_matrix(
        labels, predicted, names, output.with_name(f"{output.stem}_confusion_matrix.png")
    )
    print(f"confusion matrix: {figure}")
    return {
        "accuracy": accuracy,
        "labelled": int(known.sum()),
        "per_class": rows,
        "confusion_matrix": str(figure),
    }


def print_texts(
    data: PredictionData, predicted: torch.Tensor, probabilities: torch.Tensor, names: Sequence[str]
) -> None:
    for i, text in enumerate(data.texts or []):
        label = int(predicted[i])
        shown = text if len(text) <= 100 else text[:97] + "..."
        print(f"{names[label]} ({probabilities[i, label]:.1%}): {shown}")


def output_path(output: str | None, folder: Path) -> Path:
    """Where ``predictions.csv`` goes: this command's output folder; ``output=<name>`` relative to that folder, an
    absolute ``output`` as given; a folder (existing, or written with a trailing ``/``) gets ``predictions.csv``."""
    if not output:
        return folder / "predictions.csv"
    path = folder / Path(output).expanduser()  # an absolute path replaces the folder
    return path / "predictions.csv" if path.is_dir() or str(output).endswith(("/", "\\")) else path


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict ``cfg.input`` or ``cfg.text`` with the run in ``cfg.run_dir``; returns a summary."""
    from dllabs.runs import restore_run

    if not cfg.get("run_dir"):
        raise ConfigError("predict.py needs run_dir=<a run folder made by train.py>")
    if (cfg.get("input") is None) == (cfg.get("text") is None):
        raise ConfigError('predict.py needs exactly one of input=<file or folder> or text="..."')
    run = restore_run(cfg.run_dir, list(cfg.get("run_overrides") or []), cfg.get("ckpt"))
    datamodule, task, checkpoint = run.datamodule, run.task, run.checkpoint
    hook = getattr(datamodule, "prediction_data", None)
    if not callable(hook):
        raise ConfigError(
            f"the run's data ({type(datamodule).__name__}) has no prediction_data hook, so predict.py cannot "
            "feed it inputs; use eval.py for this run"
        )
    log.info("predicting with %s", checkpoint)

    data = hook(input=cfg.get("input"), text=cfg.get("text"))
    output = output_path(cfg.get("output"), Path(cfg.paths.output_dir))
    probabilities = predict_probabilities(task, data.loader, cfg.get("accelerator", "auto"), output.parent)
    if len(probabilities) != len(data.ids):
        raise ConfigError(
            f"got {len(probabilities)} predictions for {len(data.ids)} inputs; the loader must not drop any"
        )
    predicted = probabilities.argmax(dim=1)
    names = class_names(datamodule, probabilities.shape[1])

    write_predictions(output, data, predicted, probabilities)
    print(f"wrote {len(predicted)} predictions to {output}")
    counts = torch.bincount(predicted, minlength=len(names)).tolist()
    print("predicted classes: " + ", ".join(f"{name} {count}" for name, count in zip(names, counts)))
    if data.texts is not None:
        print_texts(data, predicted, probabilities, names)
    summary: dict[str, Any] = {
        "run_dir": str(cfg.run_dir),
        "checkpoint": str(checkpoint),
        "input": cfg.get("input"),
        "predictions": str(output),
        "count": len(predicted),
        "predicted_counts": dict(zip(names, counts)),
    }
    labelled = report_labelled(data, predicted, names, output)
    if labelled is not None:
        summary.update(labelled)
    output.with_name(f"{output.stem}_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    hydra_main(predict, "predict")
