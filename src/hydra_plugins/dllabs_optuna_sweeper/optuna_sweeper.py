"""A resumable Optuna sweeper on top of hydra-optuna-sweeper, for which a crashed or diverged trial is one failed trial.

hydra-optuna-sweeper 1.3 alone stops the whole study when a job returns NaN (Optuna rejects the value and the
plugin then tells the trial twice) and, with its default ``max_failure_rate: 0``, at the first job that raises.
This subclass (selected with ``hydra.sweeper._target_``, see ``conf/sweep/optuna_*.yaml``):

- turns a non-finite return value (a diverged run) into a failed job, so Optuna records the trial as FAIL;
- with ``storage`` set, resumes the named study: trials left RUNNING by a killed sweep become FAIL, only the
  trials still missing from ``n_trials`` run, and run folder N is Optuna trial N;
- creates the folder of a ``sqlite:///`` storage, writes ``trials.csv`` (every trial's state, value, params)
  next to the plugin's ``optimization_results.yaml``, and says clearly when no trial completed;
- saves the sweep's config as ``multirun.yaml`` (as Hydra's basic sweeper does), so each run's TensorBoard name
  and HParams row can say which keys the search varies;
- draws Optuna's own figures of the study (optimisation history, parallel coordinates, slice, and parameter
  importances where scikit-learn is installed) as PNGs next to ``trials.csv`` when the sweep ends.

Hydra imports this module at every start-up to discover plugins: keep its imports light (Optuna is lazy).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class TrialDiverged(RuntimeError):
    """A job finished but returned a non-finite objective (its run diverged)."""


def _non_finite(value: Any) -> bool:
    try:
        values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
    except (TypeError, ValueError):
        return False
    return any(not math.isfinite(v) for v in values)


class _DivergedAsFailed:
    """Wraps a Hydra launcher: a job that returned NaN/inf comes back as a failed job."""

    def __init__(self, launcher: Any) -> None:
        self._launcher = launcher

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        returns = self._launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for ret in returns:
            if ret.status == JobStatus.COMPLETED and _non_finite(ret._return_value):
                where = _run_folder(ret)
                ret._return_value = TrialDiverged(
                    f"the run returned {ret._return_value} (diverged); see {where}/metrics.json. "
                    f"Overrides: {' '.join(ret.overrides or [])}"
                )
                ret.status = JobStatus.FAILED
        return returns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._launcher, name)


def _run_folder(ret: JobReturn) -> str:
    output_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg is not None else None
    return str(output_dir or "its run folder")


def _ensure_sqlite_folder(storage: Any) -> None:
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)


class ResumableOptunaSweeper(OptunaSweeper):
    """``OptunaSweeper`` with resume, non-finite results as failed trials and a trials table."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweeper.launcher = _DivergedAsFailed(self.sweeper.launcher)

    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        _ensure_sqlite_folder(impl.storage)
        Path(impl.sweep_dir).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(impl.config, Path(impl.sweep_dir) / "multirun.yaml")
        requested = impl.n_trials
        already = self._resume(impl)
        impl.n_trials = max(0, requested - already)
        if already:
            log.info("Resuming study %s: %d of %d trials done, %d to run", impl.study_name, already, requested, impl.n_trials)
        try:
            impl.sweep(arguments)
        except ValueError as err:
            if "No trials are completed yet" not in str(err):
                raise
        except RuntimeError as err:
            # GridSampler stops the study from inside `tell` after the last grid point; when that trial failed
            # the plugin does not expect it. The trial's state is stored by then: only the summary is missing.
            if "Study.stop" not in str(err):
                raise
        finally:
            impl.n_trials = requested
        self._summarise(impl)

    @staticmethod
    def _load_study(impl: Any) -> Any:
        import optuna

        if impl.storage is None:
            return None
        try:
            return optuna.load_study(study_name=impl.study_name, storage=impl.storage, sampler=None)
        except KeyError:
            return None

    def _resume(self, impl: Any) -> int:
        """Fail trials a killed sweep left running; continue job numbers at the trial count."""
        from optuna.trial import TrialState

        study = self._load_study(impl)
        if study is None:
            return 0
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            log.warning("trial %d was left %s by an interrupted sweep; marking it failed", trial.number, trial.state.name)
            study.tell(trial.number, state=TrialState.FAIL)
        trials = study.get_trials(deepcopy=False)
        impl.job_idx = len(trials)
        return len(trials)

    def _summarise(self, impl: Any) -> None:
        """Write trials.csv and optimization_results.yaml (best params/value, trial counts) into the sweep folder."""
        from optuna.trial import TrialState

        study = self._load_study(impl)
        if study is None:
            return
        folder = Path(impl.sweep_dir)
        folder.mkdir(parents=True, exist_ok=True)
        frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration"))
        frame.to_csv(folder / "trials.csv", index=False)
        counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        summary: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "trials": counts}
        if complete and len(study.directions) == 1:
            best = study.best_trial
            summary.update(
                best_trial=best.number, best_params=best.params, best_value=best.value,
                best_run_dir=str(folder / str(best.number)),
            )
            log.info("Best trial %d: value %s, params %s", best.number, best.value, best.params)
        OmegaConf.save(OmegaConf.create(summary), folder / "optimization_results.yaml")
        write_figures(study, folder)
        log.info("%s trials of study %s in %s (trials.csv, optimization_results.yaml)", counts, study.study_name, folder)
        if not complete:
            from dllabs.errors import DllabsError

            raise DllabsError(
                f"no trial of study {study.study_name!r} completed (all failed or diverged); see "
                f"{folder}/trials.csv and each run folder's metrics.json, then narrow the search space"
            )


FIGURES = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "slice": "plot_slice",
}


def write_figures(study: Any, folder: Path) -> list[Path]:
    """Optuna's matplotlib figures of ``study`` as ``<folder>/optuna_<name>.png``; returns the files written.

    Optuna 2.10 (the version hydra-optuna-sweeper 1.3 allows) predates matplotlib 3.6; three small patches, in
    force only while drawing, let its figures draw (see the comments below). Parameter importances use Optuna's
    mean-decrease-impurity evaluator (a scikit-learn random forest): its default fANOVA evaluator fails on
    today's NumPy in Optuna 2.10.

    A figure Optuna cannot draw (no completed trial yet; parameter importances without scikit-learn or with
    fewer than two completed trials) is skipped with a log line, never failing the sweep.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as optuna_plots
    from matplotlib import cm
    from matplotlib.figure import Figure
    from optuna.importance import MeanDecreaseImpurityImportanceEvaluator

    colorbar = Figure.colorbar

    def colorbar_beside_the_axes(figure, mappable, cax=None, ax=None, **kwargs):
        # Optuna 2's parallel-coordinate figure asks for the colour bar of a line collection before adding it
        # to its axes, which matplotlib >= 3.6 refuses; give it the figure's axes to take the space from
        if cax is None and ax is None and getattr(mappable, "axes", None) is None and figure.axes:
            ax = figure.axes[0]
        return colorbar(figure, mappable, cax=cax, ax=ax, **kwargs)

    from optuna.visualization.matplotlib import _parallel_coordinate

    written = []
    for name, function in FIGURES.items():
        path = folder / f"optuna_{name}.png"
        try:
            with (
                warnings.catch_warnings(),
                mock.patch.object(Figure, "colorbar", colorbar_beside_the_axes),
                # Optuna 2 takes log10 of a log-scaled parameter and then puts that on a log axis, which
                # matplotlib refuses for values <= 0: parallel coordinates show such parameters on linear axes
                mock.patch.object(_parallel_coordinate, "_is_log_scale", lambda trials, name: False),
                # Optuna 2's importance figure colours its bars with cm.get_cmap, removed in matplotlib 3.9
                mock.patch.object(cm, "get_cmap", matplotlib.colormaps.get_cmap, create=True),
            ):
                warnings.simplefilter("ignore")  # Optuna 2 calls its matplotlib figures "experimental"
                options = {"evaluator": MeanDecreaseImpurityImportanceEvaluator()} if name == "param_importances" else {}
                axes = getattr(optuna_plots, function)(study, **options)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            folder.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
        except Exception as err:  # noqa: BLE001 - a figure must never fail the study
            log.info("Optuna figure %s not drawn: %s", name, err)
    if written:
        log.info("Optuna figures in %s: %s", folder, ", ".join(p.name for p in written))
    return written
