"""The Hydra entry wrapper every command shares (train, eval, predict, analyze, generate).

It checks every job's composed config before Hydra starts, so before any folder exists
(:func:`~dllabs.launch_check.check_command_line`: values, Hydra's own errors, each member of a sweep), turns a
user error (:class:`~dllabs.errors.DllabsError`, also when Hydra wraps it while instantiating) into one ``error:``
line and exit status 2, after registering the project's OmegaConf resolvers (:mod:`dllabs.resolvers`).
``HYDRA_FULL_ERROR=1`` (or ``--verbose`` on the command line) shows the traceback instead; a bad config still stops
before the run folder. What Lightning prints is tidied by :mod:`dllabs.lightning_console` for every command.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from dllabs.config_schema import CONF_DIR
from dllabs.errors import DllabsError
from dllabs.launch_check import check_command_line
from dllabs.lightning_console import route_lightning_logs_through_hydra
from dllabs.resolvers import register_resolvers

log = logging.getLogger("dllabs")

VERBOSE_FLAG = "--verbose"


def run_mode() -> RunMode | None:
    """RUN or MULTIRUN under Hydra; None when a config was composed without it (tests)."""
    return HydraConfig.get().mode if HydraConfig.initialized() else None


def full_errors() -> bool:
    """True when the user asked for tracebacks (``HYDRA_FULL_ERROR=1`` or ``--verbose``)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def user_error(err: BaseException) -> DllabsError | None:
    """The user error behind ``err``: itself, or the cause Hydra wrapped in an ``InstantiationException``."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, DllabsError) else None


def exit_with(err: DllabsError) -> NoReturn:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


def hydra_main(task_function: Callable[[DictConfig], Any], config_name: str) -> None:
    """Run ``task_function`` under Hydra; user errors print one line and exit 2 (the rest of a sweep still runs)."""
    register_resolvers()  # the project's ${dllabs.*} resolvers, before any config is composed
    if VERBOSE_FLAG in sys.argv:
        sys.argv.remove(VERBOSE_FLAG)
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        check_command_line(config_name, sys.argv[1:])
    except DllabsError as err:
        if full_errors():
            raise
        exit_with(err)

    def guarded(cfg: DictConfig) -> Any:
        route_lightning_logs_through_hydra()  # under Hydra's job logging now: each message once, no adverts
        try:
            return task_function(cfg)
        except Exception as err:
            found = user_error(err)
            if found is None or full_errors():
                raise
            if run_mode() == RunMode.MULTIRUN:
                log.error("%s", found)
                raise found from None
            exit_with(found)

    guarded.__name__ = task_function.__name__
    hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(guarded)()
