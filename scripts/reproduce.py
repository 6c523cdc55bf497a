"""Reproduce one lab's whole study end to end: its runs, its sweeps and its reports, in fixed folders.

    python scripts/reproduce.py LAB [--dry-run] [--force] [--only STEP ...] [--quick] [--allow-dirty] [-- OVERRIDES]
    make reproduce LAB=resnet20 ARGS="-- trainer=gpu"
    make reproduce LAB=lms ARGS=--quick        # a few batches per run: checks the pipeline and the ledger

A lab and its steps are the lab registry's (``src/dllabs/labs.py``; ``--list`` shows each lab's steps).
Everything lands under ``outputs/reproduce/<lab>/<step>/``; ``outputs/reproduce/<lab>/reproduce.json`` records
each step's command, exit status, time, commit and machine. Run it again after an interruption: finished steps are
skipped (``--force`` redoes them) and training steps resume from their last checkpoint (``ckpt_path=last``).
At the end the lab's entry of the results ledger is rewritten from these folders: ``docs/results/<lab>.json`` and
``docs/results.md`` (see ``scripts/ledger.py``). ``--quick`` runs every training command for a few batches, under
``outputs/reproduce-quick/`` with its own ledger there, so the real ledger is never overwritten by a check.
Overrides after ``--`` go to every train.py command (e.g. ``trainer=gpu``, ``trainer.precision=bf16-mixed``,
``hydra/launcher=slurm`` to send the sweeps to a cluster).

It records only what a commit holds: with uncommitted changes to code or config (anything but ``docs/``,
``tests/``, the README and ``outputs/``) it stops with one ``error:`` line (exit 2) before the first step, and
before any later step if the tree changed meanwhile. ``--allow-dirty`` records anyway: the commit is marked
``-dirty``, the diff's hash is recorded and shown in the ledger, and the diff is kept as
``outputs/reproduce/<lab>/uncommitted-<hash>.diff``. ``--quick`` and ``--dry-run`` record no result and never refuse.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from dllabs.errors import ConfigError, DllabsError
from dllabs.labs import LABS, Step, lab
from dllabs.provenance import Tree, machine, tree
from dllabs.reporting.ledger import build_lab
from dllabs.reporting.ledger_markdown import update_readme, write_index

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("outputs") / "reproduce"
QUICK_OUT = Path("outputs") / "reproduce-quick"
QUICK = [  # a few batches of every training command: checks the commands and the ledger, measures nothing
    "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=2", "trainer.num_sanity_val_steps=0",
]


def command(step: Step, lab_dir: Path, extra: list[str]) -> list[str]:
    """The step's command line: a run resumes its ``last.ckpt``, a sweep its jobs; ``extra`` goes to train.py."""
    step_dir = lab_dir / step.name
    argv = step.arguments(lab_dir)
    if step.kind == "run":
        resume = ["ckpt_path=last"] if (ROOT / step_dir / "checkpoints" / "last.ckpt").exists() else []
        argv += [f"hydra.run.dir={step_dir}", *resume, *extra]
    elif step.kind == "sweep":
        argv += [f"hydra.sweep.dir={step_dir}", "ckpt_path=last", *extra]
    return [sys.executable, *argv]


def checked_tree(allow_dirty: bool) -> Tree | None:
    """The checkout to record; a :class:`ConfigError` when code or config have uncommitted changes, unless allowed."""
    checkout = tree(ROOT)
    if checkout is not None and checkout.dirty and not allow_dirty:
        shown = ", ".join(checkout.changed[:5]) + (f" and {len(checkout.changed) - 5} more" if len(checkout.changed) > 5 else "")
        raise ConfigError(
            f"uncommitted changes to code or config ({shown}): commit them first, so the ledger names the code that "
            "ran, or pass --allow-dirty to record with the diff's hash"
        )
    return checkout


def _load_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lab", nargs="?", choices=sorted(LABS), help="which lab's study")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--force", action="store_true", help="redo steps that finished before")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    parser.add_argument("--list", action="store_true", help="list every lab's steps")
    parser.add_argument("--quick", action="store_true", help="a few batches per run, under outputs/reproduce-quick/")
    parser.add_argument("--out", type=Path, default=None, help="folder of the labs' run folders (default: outputs/reproduce)")
    parser.add_argument(
        "--ledger", type=Path, default=None,
        help="results folder to update (default: docs/results, or <out>/results with --quick or --out)",
    )
    parser.add_argument("--no-ledger", action="store_true", help="do not update the results ledger")
    parser.add_argument(
        "--allow-dirty", action="store_true",
        help="record from a tree with uncommitted changes to code or config: the commit is marked -dirty, the "
        "diff's hash is recorded and shown in the ledger, and the diff is kept as <lab folder>/uncommitted-<hash>.diff",
    )
    args = parser.parse_args(argv)
    if args.list or not args.lab:
        for name, entry in LABS.items():
            print(f"{name}: {', '.join(step.name for step in entry.steps)}")
        return 0 if args.list else 2
    try:
        return reproduce(args, extra)
    except DllabsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def reproduce(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the lab's steps (``args.only`` of them) and rewrite its ledger entry; 1 when a step failed."""
    spec = lab(args.lab)
    chosen = {spec.step(name).name for name in args.only or []}
    out = args.out or (QUICK_OUT if args.quick else OUT)
    ledger_dir = args.ledger or (ROOT / "docs" / "results" if out == OUT else out / "results")
    if args.quick:
        extra = [*QUICK, *extra]
    allow_dirty = args.allow_dirty or args.quick  # a quick run checks the pipeline: it records no result
    if not args.dry_run:
        checked_tree(allow_dirty)  # refuse before the first step, not after the steps that come before it
    lab_dir = out / args.lab
    state_file = ROOT / lab_dir / "reproduce.json"
    state = _load_state(state_file)
    where = machine()
    failed: list[str] = []
    for step in spec.steps:
        if chosen and step.name not in chosen:
            continue
        step_extra = extra if step.kind != "report" else []
        argv = command(step, lab_dir, step_extra)
        printable = shlex.join(["python", *argv[1:]])
        if args.dry_run:
            print(printable)
            continue
        if state.get(step.name, {}).get("status") == "ok" and not args.force:
            print(f"[{args.lab}] {step.name}: done before, skipped (--force redoes it)")
            continue
        blocked = [need for need in step.needs if need in failed]
        if blocked:
            print(f"[{args.lab}] {step.name}: skipped, needs {', '.join(blocked)} which failed")
            failed.append(step.name)
            continue
        checkout = checked_tree(allow_dirty)  # the code this step runs (it may have changed since the last step)
        diff = _keep_diff(checkout, ROOT / lab_dir) if checkout is not None and checkout.dirty else None
        if diff:
            print(f"[{args.lab}] {step.name}: uncommitted changes to code or config, diff sha256 {diff} "
                  f"(kept in {lab_dir / f'uncommitted-{diff}.diff'})")
        print(f"[{args.lab}] {step.name}: {printable}", flush=True)
        started = time.time()
        returncode = subprocess.run(argv, cwd=ROOT, check=False).returncode
        state[step.name] = {
            "command": printable, "kind": step.kind,
            "overrides": [a for a in step.arguments(lab_dir) if "=" in a] + step_extra,
            "status": "ok" if returncode == 0 else "failed", "returncode": returncode,
            "seconds": round(time.time() - started, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "commit": checkout.commit if checkout else None, "diff": diff, "machine": where, "quick": args.quick,
        }
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(state, indent=2))
        if returncode != 0:
            failed.append(step.name)
            print(f"[{args.lab}] {step.name} failed (exit {returncode}); the steps that do not need it go on")
    if args.dry_run:
        return 0
    print(f"[{args.lab}] {'failed: ' + ', '.join(failed) if failed else 'all steps done'}; "
          f"results in {lab_dir}/ (log: {state_file.relative_to(ROOT) if state_file.is_relative_to(ROOT) else state_file})")
    if not args.no_ledger and state:
        build_lab(args.lab, ROOT / lab_dir, ROOT / ledger_dir, quick=args.quick)
        index = write_index(ROOT / ledger_dir, (ROOT / ledger_dir).with_suffix(".md"))
        print(f"[{args.lab}] ledger updated: {ledger_dir / (args.lab + '.json')} and {index}")
        if (ROOT / ledger_dir).resolve() == (ROOT / "docs" / "results").resolve():
            update_readme(ROOT / "README.md", ROOT / ledger_dir)
    return 1 if failed else 0


def _keep_diff(checkout: Tree, lab_dir: Path) -> str:
    """Write the uncommitted changes beside the lab's step log; their hash (the name the ledger shows)."""
    digest = str(checkout.diff_hash)
    lab_dir.mkdir(parents=True, exist_ok=True)
    (lab_dir / f"uncommitted-{digest}.diff").write_text(checkout.diff)
    return digest


if __name__ == "__main__":
    sys.exit(main())
