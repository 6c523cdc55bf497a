"""Reading CIFAR-style pickles without letting a crafted file run code.

A pickle can call any importable function while loading. ``load_restricted`` only resolves the few globals
that a numpy array inside a CIFAR batch needs; anything else raises ``pickle.UnpicklingError``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array reconstruction; lists, dicts, bytes and strings are builtins."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: not part of a CIFAR batch")


def load_restricted(path: Path) -> Any:
    """Unpickle ``path`` allowing only the objects a CIFAR batch contains (Python 2 strings as latin-1)."""
    return RestrictedUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="latin1").load()
