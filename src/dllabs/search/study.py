"""Where a study lives and how a worker or a job reaches it.

``storage`` is what ``optuna-dashboard`` takes too: a database URL (``sqlite:///path/studies.db``, the default;
``postgresql+psycopg://user:password@host/db`` for many machines) or the path of an Optuna journal file
(``/shared/fs/studies.log``: a shared filesystem without a database server).

A database storage records each running trial's heartbeat (``heartbeat_interval``); a trial whose worker died
(SIGKILL, node lost) is failed by the next worker that looks after ``grace_period`` seconds (optionally retried,
``retry_failed``). Optuna's journal storage has no heartbeat: a killed worker's trial stays RUNNING there.

A training job learns which trial it is from the environment (``TRIAL_ENV``, set by the sweeper through
Hydra's ``hydra.job.env_set``, so a job in another process or on another machine gets it too), and reports to
the study through the same storage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import get_class
from omegaconf import OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
# the job's trial: storage, study name, trial id (Optuna's), set per job by the sweeper
LOCK_GRACE_S = 120  # a lock file older than this was left by a dead worker (a held one lives well under a second)
PRUNED_AT = "pruned_at_epoch"  # the trial's user attribute the pruning callback sets; the sweeper reads it
TRIAL_ENV = ("DLLABS_OPTUNA_STORAGE", "DLLABS_OPTUNA_STUDY", "DLLABS_OPTUNA_TRIAL_ID")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
}


def is_journal(storage: str) -> bool:
    """A storage that is not a URL is the path of a journal file."""
    return _URL.match(storage) is None


def storage_of(sweeper: Any, sweep_dir: Path) -> str:
    """The study's storage: ``hydra.sweeper.storage``, else a SQLite file in the sweep folder."""
    return str(sweeper.storage or f"sqlite:///{Path(sweep_dir).resolve()}/optuna.db")


def existing_study(storage: str, study_name: str) -> optuna.Study | None:
    """The study if its storage and the study exist already, without creating either (None otherwise)."""
    is_file = is_journal(storage) or storage.startswith("sqlite:///")
    if is_file and not Path(storage.removeprefix("sqlite:///")).expanduser().is_file():
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:  # no study of that name in the storage
        return None
    except (SQLAlchemyError, ImportError) as err:  # a server not reachable, no driver: the sweeper will say so
        log.debug("could not read %s: %s", storage, err)
        return None


def open_storage(
    storage: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    retry_failed: int | None = None,
) -> optuna.storages.BaseStorage:
    """Optuna's storage for ``storage`` (creating a SQLite file's or journal's folder)."""
    if is_journal(storage):
        Path(storage).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(Path(storage).expanduser())))
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    stale = RetryHeartbeatStaleTrialCallback(max_retry=retry_failed) if retry_failed and heartbeat_interval else None
    for attempt in range(1, 4):
        try:
            return RDBStorage(
                storage,
                # SQLite: wait for another worker's write instead of failing at once
                engine_kwargs={"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=stale,
            )
        except Exception as err:  # workers started together race to create Optuna's tables: one fails, once
            if attempt == 3:
                raise
            log.info("could not open %s (%s: another worker creating its tables?); trying again", storage, err)
            time.sleep(attempt)
    raise RuntimeError(f"could not open {storage}")  # not reached: the last attempt raises its own error


def make_pruner(spec: Any, max_epochs: int | None = None) -> optuna.pruners.BasePruner:
    """``none``/``median``/... (Optuna's defaults; percentile at 25) or a config with ``_target_`` and settings.
    Hyperband's ``max_resource: auto`` is the trials' ``max_epochs`` when known (Optuna's own guess, the first
    finished trial's last step + 1, is one more than the epochs trained, the step the pruning callback reports)."""
    if spec is None:
        return optuna.pruners.NopPruner()
    if isinstance(spec, str):
        if spec not in PRUNERS:
            raise ValueError(f"hydra.sweeper.pruner={spec}: one of {', '.join(PRUNERS)}, or a pruner config")
        pruner_class, settings = PRUNERS[spec], {"percentile": 25.0} if spec == "percentile" else {}
    else:
        settings = {k: v for k, v in OmegaConf.to_container(OmegaConf.create(spec), resolve=True).items()
                    if k != "_target_"}
        pruner_class = get_class(spec["_target_"])
    if max_epochs and pruner_class is optuna.pruners.HyperbandPruner and settings.get("max_resource", "auto") == "auto":
        settings["max_resource"] = int(max_epochs)
    return pruner_class(**settings)


@contextlib.contextmanager
def ask_lock(storage: str, rdb: optuna.storages.BaseStorage | None = None) -> Iterator[None]:
    """Held while a worker counts the study's trials and asks for one, so that workers together stop at exactly
    ``n_trials``: a lock file beside a SQLite or journal file (Optuna's, safe on NFS, broken after ``LOCK_GRACE_S``
    when its holder died), a PostgreSQL advisory lock for a PostgreSQL storage; none for other databases."""
    if is_journal(storage) or storage.startswith("sqlite:///"):
        path = storage if is_journal(storage) else storage.removeprefix("sqlite:///")
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # the first worker of a new storage
        lock = JournalFileOpenLock(str(Path(path).expanduser()) + ".ask", grace_period=LOCK_GRACE_S)
        lock.acquire()
        try:
            yield
        finally:
            try:
                lock.release()
            except RuntimeError:  # held past the grace period (a machine too busy): another worker broke it
                log.warning("the ask lock of %s was broken by another worker after %d s", path, LOCK_GRACE_S)
    elif storage.startswith("postgresql") and isinstance(rdb, RDBStorage):
        key = zlib.crc32(b"dllabs-optuna-ask")
        with rdb.engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
    else:
        yield


def trial_env(storage: str, study_name: str, trial_id: int) -> dict[str, str]:
    """The environment that tells a job which trial it is."""
    return dict(zip(TRIAL_ENV, (storage, study_name, str(trial_id)), strict=True))


def trial_of_this_job(
    pruner: Any, environ: Mapping[str, str] = os.environ, max_epochs: int | None = None
) -> optuna.trial.Trial | None:
    """The running trial this job is (None outside an Optuna search), to report to and ask about pruning
    (``max_epochs``: the job's, for :func:`make_pruner`)."""
    values = [environ.get(name) for name in TRIAL_ENV]
    if not all(values):
        return None
    storage, study_name, trial_id = values
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(storage),
        pruner=make_pruner(pruner, max_epochs),
        sampler=optuna.samplers.RandomSampler(),  # the job samples nothing: its parameters came as overrides
    )
    return optuna.trial.Trial(study, int(trial_id))
