"""Checkpoint files that a crash cannot leave half-written, and a resume that never trusts a broken one.

Lightning's default writer goes through an fsspec transaction whose temporary file lives in the system temp
folder: moving it into the run folder is a copy (not atomic) when that folder is on another filesystem, and
nothing is synced to disk. :class:`AtomicCheckpointIO` writes next to the target, syncs, and renames.
:func:`resumable` checks the file a run is about to resume from and, when it cannot be read (truncated by a
crash or a full disk), falls back to the newest readable checkpoint of the same folder, saying so;
:func:`resume_path` picks the checkpoint ``ckpt_path`` names (``last`` = this run's, else the newest earlier run's).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dllabs.errors import CheckpointMismatchError, ConfigError

log = logging.getLogger("dllabs")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write ``path.partial`` in the target folder, fsync it, then rename it over ``path`` (local paths)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _progress(path: Path) -> tuple[int, int] | None:
    """(epoch, global_step) of a readable checkpoint; None when it cannot be read."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint.get("epoch", -1)), int(checkpoint.get("global_step", -1))
    except Exception as err:  # noqa: BLE001 - any failure to read means "not usable"
        log.debug("%s is not readable: %s", path, err)
        return None


def resumable(path: str | Path) -> str:
    """``path`` when it reads as a checkpoint, else the newest readable ``*.ckpt`` beside it (logged)."""
    path = Path(path)
    if _progress(path) is not None:
        return str(path)
    readable = [(progress, other) for other in path.parent.glob("*.ckpt") if other != path
                for progress in [_progress(other)] if progress is not None]
    if not readable:
        raise CheckpointMismatchError(
            f"{path} cannot be read as a checkpoint (truncated?) and no other readable checkpoint is beside it; "
            "start the run again without ckpt_path"
        )
    progress, fallback = max(readable, key=lambda item: item[0])
    log.warning(
        "%s cannot be read as a checkpoint (truncated?); resuming from %s (epoch %d, step %d) instead",
        path, fallback, progress[0] + 1, progress[1],
    )
    return str(fallback)


def requested_checkpoint(cfg: Any, multirun: bool) -> str | None:
    """The checkpoint a run of ``cfg`` resumes from (:func:`resume_path` of its ``ckpt_path``, its folder and its
    task's earlier runs); the launch check calls it before the run folder exists, ``train`` again in the run."""
    runs_root = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    return resume_path(cfg.get("ckpt_path"), Path(cfg.paths.output_dir), runs_root, multirun)


def resume_path(requested: str | None, output_dir: Path, runs_root: Path, multirun: bool) -> str | None:
    """The checkpoint a run resumes from: ``requested`` (a file), or for ``last`` this run folder's ``last.ckpt``,
    else the newest ``last.ckpt`` of the earlier runs under ``runs_root`` (a multirun job without one of its own
    starts from scratch). Passed through :func:`resumable`, so an unreadable file gives way to a readable one.
    """
    if not requested:
        return None
    if requested != "last":
        if not Path(requested).is_file():
            what = "is a folder" if Path(requested).is_dir() else "does not exist"
            raise ConfigError(f"ckpt_path={requested} {what}; give a .ckpt file or ckpt_path=last")
        return resumable(requested)
    own = output_dir / "checkpoints" / "last.ckpt"
    if own.exists():
        return resumable(own)
    if multirun:
        log.info("ckpt_path=last: no checkpoint in %s yet, starting this job from scratch", output_dir)
        return None
    candidates = sorted(runs_root.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    candidates = [c for c in candidates if output_dir not in c.parents]
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last: no last.ckpt in {output_dir} nor under {runs_root}; "
            "pass ckpt_path=<run>/checkpoints/last.ckpt"
        )
    log.info("ckpt_path=last resumes %s", candidates[-1])
    return resumable(candidates[-1])
