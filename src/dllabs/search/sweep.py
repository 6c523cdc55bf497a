"""One worker of an Optuna search: it asks the study for trials, runs each as a Hydra job, tells the result.

Any number of workers (processes started with the same command, here or on other machines) share a study
through its storage; each counts the study's trials and asks for one under :func:`dllabs.search.study.ask_lock`,
so that together they stop at exactly ``n_trials``. Within one worker, ``n_jobs`` trials run at once when the
launcher runs jobs in other processes (``hydra/launcher=local`` pins each to its own GPU, ``slurm``); a new
trial starts whenever one ends, instead of in batches that wait for their slowest trial.

Run folder N is trial N (``hydra.job.num`` is the trial number). A job that raised, or returned NaN/inf (a
diverged run), is a FAIL trial and the search goes on. A job that the pruner stopped (see
:class:`dllabs.callbacks.pruning.OptunaPruning`) is a PRUNED trial. With a database storage each running
trial's heartbeat is recorded while its job runs, and a worker with nothing left to ask waits for the other
workers' running trials, so that a trial whose worker was killed is failed by its heartbeat (or retried) and
the study ends with ``n_trials`` finished trials.

A worker sent SIGTERM (``kill``, SLURM's ``scancel``) starts no new trial and exits: a trial that Lightning stops
at its next step ends FAIL at once; one it no longer checks (past its last epoch, drawing figures) finishes first.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher  # Hydra's in-process launcher
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages._heartbeat import (  # Optuna's, used by optimize()
    get_heartbeat_thread,
    is_heartbeat_enabled,
)
from optuna.trial import TrialState

from dllabs.errors import DllabsError
from dllabs.search.space import SearchSpace, check_same_space, remember_space
from dllabs.search.study import PRUNED_AT, ask_lock, make_pruner, open_storage, storage_of, trial_env
from dllabs.search.summary import summarise

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=ExperimentalWarning)  # heartbeats, retries, figures: long in use
# this worker records each trial's heartbeat itself while the trial's job runs (Optuna's own heartbeat thread)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class OptunaSearch:
    """The sweep of one worker; ``settings`` are ``hydra.sweeper``'s (see ``conf/hydra/sweeper/optuna.yaml``)."""

    def __init__(self, settings: DictConfig, launcher: Launcher, config: DictConfig) -> None:
        self.settings = settings
        self.launcher = launcher
        self.config = config
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.storage_url = storage_of(settings, self.sweep_dir)
        self.stopping = threading.Event()

    def run(self, arguments: list[str]) -> dict[str, Any]:
        settings = self.settings
        params = OmegaConf.to_container(settings.params, resolve=True) if settings.params else {}
        space = SearchSpace.from_overrides([f"{key}={value}" for key, value in params.items()] + list(arguments))
        sampler_class = get_class(settings.sampler._target_)
        n_trials = int(settings.n_trials)
        if issubclass(sampler_class, optuna.samplers.GridSampler):
            grid = space.grid()
            sampler = instantiate(settings.sampler, search_space=grid)
            n_trials = min(n_trials, math.prod(len(values) for values in grid.values()))
        else:
            sampler = instantiate(settings.sampler)
        with ask_lock(self.storage_url):  # file storages: no two workers create the tables at once
            self.storage = open_storage(
                self.storage_url, settings.heartbeat_interval, settings.grace_period, settings.retry_failed
            )
            study = optuna.create_study(
                study_name=settings.study_name, storage=self.storage, sampler=sampler,
                pruner=make_pruner(settings.pruner, OmegaConf.select(self.config, "trainer.max_epochs")), direction=settings.direction, load_if_exists=True,
            )
            check_same_space(study, space, self.storage_url)  # train.py's launch check refused it already, unless
            remember_space(study, space)  # another worker made the study since
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        self.n_trials = n_trials
        log.info(
            "Study %s in %s: %d trials, sampler %s, pruner %s, direction %s; searching %s",
            study.study_name, self.storage_url, n_trials, type(sampler).__name__, type(study.pruner).__name__,
            settings.direction, ", ".join(f"{k}: {v}" for k, v in space.distributions.items()) or "nothing",
        )
        n_jobs = self._n_jobs()
        workers = [threading.Thread(target=self._work, args=(study, space), daemon=True) for _ in range(n_jobs - 1)]
        for worker in workers:
            worker.start()
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._stop) if in_main else None
        try:
            self._work(study, space)
            for worker in workers:
                worker.join()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        summary = summarise(study, self.sweep_dir)
        log.info("%s trials of study %s in %s (trials.csv, optimization_results.yaml)", summary["trials"],
                 study.study_name, self.sweep_dir)
        if "best_trial" in summary:
            log.info("Best trial %d: value %s, params %s", summary["best_trial"], summary["best_value"],
                     summary["best_params"])
        else:
            raise DllabsError(
                f"no trial of study {study.study_name!r} completed (all failed, diverged or pruned); see "
                f"{self.sweep_dir}/trials.csv and each run folder's metrics.json, then narrow the search space"
            )
        return summary

    def _n_jobs(self) -> int:
        """Trials at once: 1 for in-process jobs; else ``n_jobs``, or the launcher's slots (one per GPU)."""
        requested = self.settings.n_jobs
        if isinstance(self.launcher, BasicLauncher):
            if requested and requested > 1:
                log.warning(
                    "n_jobs=%d: in-process jobs run one at a time; use hydra/launcher=local (one job per GPU) "
                    "or start more workers with the same command", requested,
                )
            return 1
        return int(requested or getattr(self.launcher, "capacity", 1) or 1)

    def _to_run(self, study: optuna.Study) -> bool:
        """Whether the study needs another trial: a queued (retried) one, or fewer than ``n_trials`` trials
        (a failed trial that was retried counts once, through its retry)."""
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        retried = {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}
        return sum(t.number not in retried for t in trials) < self.n_trials

    def _stop(self, signum: int, frame: Any) -> None:
        """SIGTERM: start no new trial (Lightning, which calls this handler too, stops a trial it is training)."""
        if not self.stopping.is_set():
            log.info("SIGTERM: this worker starts no new trial")
        self.stopping.set()

    def _work(self, study: optuna.Study, space: SearchSpace) -> None:
        while not self.stopping.is_set():
            with ask_lock(self.storage_url, self.storage):
                fail_stale_trials(study)
                trial = study.ask(space.distributions) if self._to_run(study) else None
                if trial is not None and is_heartbeat_enabled(self.storage):
                    self.storage.record_heartbeat(trial._trial_id)  # from its first moment: never RUNNING unwatched
            if trial is not None:
                self._run_trial(study, trial, space)
            elif not self._others_running(study):
                return

    def _others_running(self, study: optuna.Study) -> bool:
        """With heartbeats: wait while other workers' trials run (one killed is failed after the grace period,
        and may come back as a retry to run); without, nothing to wait for."""
        if not is_heartbeat_enabled(self.storage):
            return False
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return False
        log.info("waiting for %d running trial(s) of other workers: %s", len(running), [t.number for t in running])
        time.sleep(self.storage.get_heartbeat_interval())
        return True

    def _run_trial(self, study: optuna.Study, trial: optuna.trial.Trial, space: SearchSpace) -> None:
        env = trial_env(self.storage_url, study.study_name, trial._trial_id)
        overrides = space.overrides(trial.params) + [f"++hydra.job.env_set.{k}={_quoted(v)}" for k, v in env.items()]
        try:
            with get_heartbeat_thread(trial._trial_id, self.storage):
                result = self.launcher.launch([overrides], initial_job_idx=trial.number)[0]
        except BaseException:  # SIGTERM in training (Lightning's SIGTERMException), Ctrl+C: FAIL now, not by heartbeat
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        state, value, note = self._outcome(study, trial, result)
        try:
            study.tell(trial, value, state=state, skip_if_finished=True)
        except RuntimeError as err:
            # GridSampler stops the study from `tell` after its last point; only optimize() may stop: the
            # trial's state is stored by then
            if "Study.stop" not in str(err):
                raise
        log.info("trial %d %s%s: %s", trial.number, state.name, f" ({note})" if note else "",
                 " ".join(space.overrides(trial.params)))

    def _outcome(self, study: optuna.Study, trial: optuna.trial.Trial, result: JobReturn):
        """The trial's state and value from its job: PRUNED (stopped by the pruner), FAIL (raised, or returned
        a non-finite value: diverged), else COMPLETE."""
        if result.status != JobStatus.COMPLETED:
            error = result._return_value
            return TrialState.FAIL, None, f"{type(error).__name__}: {error}"
        stored = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        if PRUNED_AT in stored.user_attrs:
            return TrialState.PRUNED, None, f"pruned after epoch {stored.user_attrs[PRUNED_AT]}"
        try:
            value = float(result.return_value)
        except (TypeError, ValueError):
            return TrialState.FAIL, None, f"the job returned {result.return_value!r}, not a number"
        if not math.isfinite(value):
            return TrialState.FAIL, None, f"diverged: the run returned {value}; see {_run_folder(result)}/metrics.json"
        return TrialState.COMPLETE, value, f"{value:.6g}"


def _quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value (URLs and paths keep their ``:``, ``/``, ``@``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run_folder(result: JobReturn) -> str:
    folder = OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir") if result.hydra_cfg is not None else None
    return str(folder or "its run folder")
