"""Where a recorded result came from: the git commit of the code and config it ran, and the machine.

A tree's uncommitted changes count when they can change what runs: everything but ``docs/``, ``tests/``, the
README and ``outputs/`` (files git ignores never count; new files that it does not ignore do). ``make reproduce``
refuses to record from such a tree unless told ``--allow-dirty``, and then records the changes' hash beside the
commit (``<hash>-dirty``) and keeps the diff itself in the lab's folder.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dllabs.hardware import cpu_model

# paths whose changes cannot change a run (relative to the repository root)
NOT_CODE = ("docs", "tests", "README.md", "outputs")


def machine() -> dict[str, Any]:
    """The machine this process runs on: CPU model, cores, GPU (when torch sees one), torch version."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        info["gpu"] = None
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    return info


@dataclass(frozen=True)
class Tree:
    """A checkout as it is now: ``head`` (the commit's hash), the code/config files that differ from it
    (``changed``, untracked ones included) and ``diff``, those changes as one patch (empty when clean)."""

    head: str
    changed: tuple[str, ...]
    diff: str

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    @property
    def commit(self) -> str:
        """``head``, with ``-dirty`` when code or config differ from it."""
        return self.head + ("-dirty" if self.dirty else "")

    @property
    def diff_hash(self) -> str | None:
        """The first 12 hex digits of the patch's SHA-256; None for a clean tree."""
        return hashlib.sha256(self.diff.encode()).hexdigest()[:12] if self.dirty else None


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def tree(root: Path) -> Tree | None:
    """``root``'s checkout (see :class:`Tree`); None outside a git checkout or without git."""
    pathspec = ["--", ".", *(f":(exclude){path}" for path in NOT_CODE)]
    try:
        head = _git(root, "rev-parse", "HEAD").strip()
        status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", *pathspec)
        diff = _git(root, "diff", "HEAD", "--binary", *pathspec)
    except (OSError, subprocess.CalledProcessError):
        return None
    entries = [entry for entry in status.split("\0") if entry]
    changed, untracked, skip = [], [], False
    for entry in entries:
        if skip:  # the source path of a rename (porcelain -z gives it as the next entry)
            skip = False
            continue
        code, path = entry[:2], entry[3:]
        changed.append(path)
        if code == "??":
            untracked.append(path)
        skip = "R" in code or "C" in code
    for path in untracked:  # their content is part of what would run
        content = (root / path).read_bytes() if (root / path).is_file() else b""
        diff += f"\nuntracked {path} sha256 {hashlib.sha256(content).hexdigest()}\n"
    return Tree(head, tuple(changed), diff)

