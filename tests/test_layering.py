"""Commands are leaves: nothing in the library (nets, data, tasks, callbacks, reporting, analysis, lm) imports the
train, eval, predict, analyze or generate command, or the Hydra entry wrapper they share, directly or through
other modules, at the top of a module or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = {
    "dllabs.cli": "the train command",
    "dllabs.evaluate": "the eval command",
    "dllabs.predicting": "the predict command",
    "dllabs.analysis.cli": "the analyze command",
    "dllabs.generation": "the generate command",
    "dllabs.entry": "the commands' entry wrapper",
}
LIBRARY = ("nets", "data", "tasks", "callbacks", "reporting", "analysis", "lm")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The dllabs modules ``path`` imports anywhere in it (``from dllabs.x import y`` may name module ``x.y``)."""
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "dllabs" or name.startswith("dllabs.")}


MODULES = {module_name(p): p for p in (SRC / "dllabs").rglob("*.py")}
IMPORTS = {name: {m for m in imported_modules(path) if m in MODULES} for name, path in MODULES.items()}


def import_chain(start: str, targets: set[str]) -> list[str] | None:
    """The shortest chain of imports from ``start`` to one of ``targets``, None when there is none."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for nxt in sorted(IMPORTS[current]):
            if nxt in paths:
                continue
            paths[nxt] = [*paths[current], nxt]
            if nxt in targets:
                return paths[nxt]
            queue.append(nxt)
    return None


LIBRARY_MODULES = sorted(
    name for name in MODULES if name.split(".")[1:2] and name.split(".")[1] in LIBRARY and name not in COMMANDS
)


def test_the_commands_and_library_are_found():
    assert set(COMMANDS) <= set(MODULES), set(COMMANDS) - set(MODULES)
    assert {"dllabs.tasks.base", "dllabs.callbacks.text_samples", "dllabs.callbacks.run_record"} <= set(LIBRARY_MODULES)
    # the walk sees imports inside functions too
    assert "dllabs.runs" in IMPORTS["dllabs.analysis.sentiment"]


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_library_module_imports_no_command(module):
    chain = import_chain(module, set(COMMANDS))
    assert chain is None, f"{module} imports {COMMANDS[chain[-1]]}: {' -> '.join(chain)}"
