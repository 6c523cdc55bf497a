"""What a search leaves in its folder: ``trials.csv``, ``optimization_results.yaml`` and Optuna's figures."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
import optuna.visualization.matplotlib as optuna_plots
from omegaconf import OmegaConf
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator
from optuna.trial import TrialState

log = logging.getLogger(__name__)

FIGURES = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "slice": "plot_slice",
    "intermediate_values": "plot_intermediate_values",  # each trial's validation curve; pruned ones stop early
}


def summarise(study: optuna.Study, folder: Path) -> dict[str, Any]:
    """Write ``trials.csv`` (every trial: number, state, value, params, pruned epoch, duration) and
    ``optimization_results.yaml`` (trial counts by state; the best trial, its params, value and run folder),
    and draw the figures. Returns the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    frame.to_csv(folder / "trials.csv", index=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    summary: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "trials": counts}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        best = study.best_trial
        summary.update(
            best_trial=best.number, best_params=best.params, best_value=best.value,
            best_run_dir=str(folder / str(best.number)),
        )
    summary["epochs_trained"] = sum(len(t.intermediate_values) for t in trials)
    OmegaConf.save(OmegaConf.create(summary), folder / "optimization_results.yaml")
    if complete:
        write_figures(study, folder)
    return summary


def write_figures(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's matplotlib figures of ``study`` as ``<folder>/optuna_<name>.png``; returns the files written.

    Parameter importances use Optuna's mean-decrease-impurity evaluator (a scikit-learn random forest). A figure
    Optuna cannot draw (no completed trial yet, importances of fewer than two completed trials, no intermediate
    values) is skipped with a log line, never failing the search.
    """
    written = []
    for name, function in FIGURES.items():
        path = folder / f"optuna_{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna calls its matplotlib figures "experimental"
                options = {"evaluator": MeanDecreaseImpurityImportanceEvaluator()} if name == "param_importances" else {}
                axes = getattr(optuna_plots, function)(study, **options)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            folder.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
        except Exception as err:  # noqa: BLE001 - a figure must never fail the search
            log.info("Optuna figure %s not drawn: %s", name, err)
    if written:
        log.info("Optuna figures in %s: %s", folder, ", ".join(p.name for p in written))
    return written
