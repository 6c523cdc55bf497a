"""What a run or an evaluation writes: its metrics as plain numbers, in JSON files that are never half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# a run's status in its metrics.json (dllabs.callbacks.run_record writes it)
STATUSES = ("ok", "diverged", "failed", "pruned")
# the statuses of a run that ended: with ckpt_path=last it is not trained again (a failed one is)
FINISHED = tuple(status for status in STATUSES if status != "failed")


def plain_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Logged metrics as sorted plain floats: epoch values under their plain names, per-step values left out."""
    out = {}
    for key, value in metrics.items():
        try:
            out[key.removesuffix("_epoch")] = float(value)
        except (TypeError, ValueError):
            continue
    return {k: v for k, v in sorted(out.items()) if not k.endswith("_step")}


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=True, default=str))
    tmp.replace(path)
