"""The one interface through which a callback adds its part to a run's ``metrics.json``.

A callback that reports something a lab needs (the LMS Wiener solution, GPT-2 samples before and after
training, exported files, throughput, peak memory, ...) subclasses :class:`ResultsCallback` and returns a plain,
JSON-ready dict from :meth:`run_results`. ``cli`` merges the dicts of all such callbacks into
``metrics.json["results"]`` when the run finishes (also when it diverged or failed part-way).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import lightning as L

log = logging.getLogger("dllabs")


class ResultsCallback(L.Callback):
    """A callback that contributes a section to the run's ``metrics.json`` ``results``."""

    def run_results(self) -> dict[str, Any]:
        """Plain JSON-ready values (numbers, strings, lists, dicts); empty when there is nothing to report."""
        return {}


def collect_results(callbacks: Iterable[Any]) -> dict[str, Any]:
    """Merge the ``run_results`` of every :class:`ResultsCallback`; a broken one is logged, never fatal."""
    merged: dict[str, Any] = {}
    for callback in callbacks:
        if not isinstance(callback, ResultsCallback):
            continue
        try:
            merged.update(callback.run_results())
        except Exception as err:  # noqa: BLE001 - a broken summary must not lose the run's record
            log.warning("could not collect results of %s: %s", type(callback).__name__, err)
    return merged
