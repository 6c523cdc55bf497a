"""Every `python train.py ...` command written in README.md, docs/ and the conf/ header comments composes and
builds; one of each lab's cheap ones trains a step on generated data.

Commands are parsed out of the files, so a command added later is checked without editing this test. A sweep
list contributes its first value; a command with a placeholder that needs a finished run (`<time>`) or a user's
own file is listed as skipped with the reason.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path

import pytest
from hydra.utils import instantiate

from dllabs.pairings import check_pairing
from dllabs.runs import instantiate_task
from tests.conftest import CONF_DIR, QUIET, ROOT, compose_config, run_cli, run_train

COMMAND = re.compile(r"python train\.py\b([^`#;&|\n]*)")
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted(CONF_DIR.rglob("*.yaml"))]
# Placeholders standing for a folder the tiny GPT-2 fixture provides.
GPT2_FOLDERS = ("<tokenizer folder>", "/path/to/saved/gpt2", "/path/to/gpt2")
NEEDS_RUN = re.compile(r"<[^>]+>")
TRAINED_DATA = {"lms", "cifar10", "imdb"}  # cheap enough to train one step on generated data


def _text_of(path: Path) -> str:
    if path.suffix == ".yaml":  # only the header comments of a config
        return "\n".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.lstrip().startswith("#"))
    return path.read_text()


def _first_of_sweep(value: str) -> str:
    """`a,b,c` -> `a`; `interval(a, b)`, `choice(a, b)`, `range(a, b)` (also under `tag(log, ...)`) -> `a`; commas
    inside brackets, braces, parentheses or quotes are not a sweep."""
    function = re.fullmatch(r"\s*(?:tag\(\s*\w+\s*,\s*)?(?:interval|choice|range)\(\s*([^,()]+?)\s*,.*", value)
    if function:
        return function.group(1)
    depth, quote = 0, None
    for i, char in enumerate(value):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            return value[:i]
    return value


def documented_commands() -> list[tuple[str, str]]:
    """(where, argument string) of every distinct `python train.py` command."""
    seen: dict[str, str] = {}
    for path in SOURCES:
        for match in COMMAND.finditer(_text_of(path)):
            args = match.group(1).strip().rstrip("\\").strip()
            seen.setdefault(args, str(path.relative_to(ROOT)))
    return [(where, args) for args, where in seen.items()]


def overrides_of(args: str, gpt2_dir: str) -> tuple[list[str] | None, str]:
    """The overrides a command gives (first value of each sweep), or None and why it is skipped."""
    for placeholder in GPT2_FOLDERS:
        args = args.replace(placeholder, gpt2_dir)
    if NEEDS_RUN.search(args):
        return None, f"needs a finished run or a user's file: {NEEDS_RUN.search(args).group(0)}"
    args = re.sub(r"(?<=\s)\[([^\[\]]*)\]", r"\1", f" {args}")  # `[a=1 b=2]`: optional arguments, given here
    tokens = shlex.split(args)
    multirun = "-m" in tokens or "--multirun" in tokens
    tokens = [t for t in tokens if t not in ("-m", "--multirun")]
    if any(t.startswith("--") for t in tokens):
        return None, f"not a run: {[t for t in tokens if t.startswith('--')]}"
    if any("=" not in t for t in tokens):
        return None, f"elided arguments: {[t for t in tokens if '=' not in t]}"
    if any(t.startswith("data.path=") for t in tokens):
        return None, "reads the user's own LMS file (data.path)"
    if multirun:
        tokens = [t.split("=", 1)[0] + "=" + _first_of_sweep(t.split("=", 1)[1]) for t in tokens]
    return tokens, ""


COMMANDS = documented_commands()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, list[str]]:
    """Generated data (and a tiny GPT-2) for each data option, as overrides."""
    root = tmp_path_factory.mktemp("data")
    return {name: importlib.import_module(f"tests.fixtures.{name}").make(root / name)
            for name in ("cifar10", "imdb", "wikitext")} | {"lms": []}


def test_commands_are_found():
    print(f"\n{len(COMMANDS)} documented train.py commands")
    assert len(COMMANDS) >= 20
    assert any("experiment=resnet20 scheduler=cosine" in args for _, args in COMMANDS)


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[args or "(no arguments)" for _, args in COMMANDS])
def test_documented_command_composes_and_builds(where, args, fixtures, tmp_path):
    gpt2_dir = next(o.split("=", 1)[1] for o in fixtures["wikitext"] if o.startswith("model.net.pretrained="))
    overrides, reason = overrides_of(args, gpt2_dir)
    if overrides is None:
        pytest.skip(f"{where}: {reason}")
    cfg = compose_config(overrides, tmp_path)
    choices = cfg.hydra.runtime.choices
    check_pairing(CONF_DIR, choices)
    if choices["data"] == "wikitext":  # the real GPT-2 weights are not here: build the tiny one instead
        keep = [o for o in overrides if not o.startswith(("model.net.pretrained=", "model.net.architecture="))]
        cfg = compose_config([*keep, *fixtures["wikitext"]], tmp_path)
    instantiate(cfg.data)
    task = instantiate_task(cfg)
    task.optimizer_factory(list(task.trainable_parameters()))


def _trained_commands() -> list[tuple[str, str]]:
    """The first documented command of each experiment (and of no experiment) on data that trains cheaply."""
    picked: dict[str, tuple[str, str]] = {}
    for where, args in COMMANDS:
        overrides, _ = overrides_of(args, "unused")
        if overrides is None or any(o.startswith(("hydra", "sweep=", "trainer=", "ckpt_path")) for o in overrides):
            continue
        experiment = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), "")
        picked.setdefault(experiment, (where, args))
    return list(picked.values())


@pytest.mark.slow
@pytest.mark.parametrize(("where", "args"), _trained_commands(), ids=[a for _, a in _trained_commands()])
def test_cheap_documented_command_trains_one_step(where, args, fixtures, tmp_path):
    overrides, _ = overrides_of(args, "unused")
    probe = compose_config(overrides, tmp_path / "probe")
    data = probe.hydra.runtime.choices["data"]
    if data not in TRAINED_DATA:
        pytest.skip(f"data={data} is not cheap to train here (composed and built above)")
    run_train([*overrides, *fixtures[data], "trainer.fast_dev_run=true", "data.num_workers=0"], tmp_path / "run")
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "ok", record.get("error")


def test_lms_command_runs_as_written(tmp_path):
    """The first documented LMS command, as a real command line (one epoch)."""
    args = next(a for _, a in COMMANDS if a.split() == ["experiment=lms"])
    result = run_cli(["train.py", *shlex.split(args), *QUIET, "trainer.max_epochs=1", f"paths.log_dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-2000:]
    (metrics,) = (tmp_path / "lms" / "runs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["status"] == "ok"
