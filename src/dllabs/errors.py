"""Errors for bad user input: each message names the problem and the fix.

The command-line entry points print these as one line and exit with status 2, without a traceback.
"""

import sys
from collections.abc import Callable


class DllabsError(Exception):
    """Base class of all errors caused by user input (paths, files, configs, checkpoints)."""


class DatasetNotFoundError(DllabsError):
    """A dataset is missing and cannot be downloaded."""


class CorruptDataError(DllabsError):
    """A dataset file exists but is truncated, corrupt or of the wrong format."""


class ConfigError(DllabsError):
    """A configuration value is invalid or inconsistent."""


class CheckpointMismatchError(DllabsError):
    """A checkpoint does not fit the model it is loaded into."""


class TrainingDiverged(Exception):
    """Raised inside a run when the loss becomes non-finite; the CLI records the run as diverged."""


def run_command(action: Callable[[], None]) -> int:
    """Run a script's work; a :class:`DllabsError` becomes one ``error:`` line on stderr and exit status 2."""
    try:
        action()
    except DllabsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
