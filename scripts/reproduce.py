"""Reproduce one lab's whole study end to end: its runs, its sweeps and its reports, in fixed folders.

    python scripts/reproduce.py LAB [--dry-run] [--force] [--only STEP ...] [--quick] [-- EXTRA OVERRIDES]
    make reproduce LAB=resnet20 ARGS="-- trainer=gpu"
    make reproduce LAB=lms ARGS=--quick        # a few batches per run: checks the pipeline and the ledger

LAB is one of: lms, layers, simplenn, robust, resnet20, imdb, gpt2 (``--list`` shows each lab's steps).
Everything lands under ``outputs/reproduce/<lab>/<step>/``; ``outputs/reproduce/<lab>/reproduce.json`` records
each step's command, exit status, time, commit and machine. Run it again after an interruption: finished steps are
skipped (``--force`` redoes them) and training steps resume from their last checkpoint (``ckpt_path=last``).
At the end the lab's entry of the results ledger is rewritten from these folders: ``docs/results/<lab>.json`` and
``docs/results.md`` (see ``scripts/ledger.py``). ``--quick`` runs every training command for a few batches, under
``outputs/reproduce-quick/`` with its own ledger there, so the real ledger is never overwritten by a check.
Overrides after ``--`` go to every train.py command (e.g. ``trainer=gpu``, ``trainer.precision=bf16-mixed``,
``hydra/launcher=slurm`` to send the sweeps to a cluster).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dllabs.reporting.ledger import build_lab, git_commit, machine, update_readme, write_index

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("outputs") / "reproduce"
QUICK_OUT = Path("outputs") / "reproduce-quick"
QUICK = [  # a few batches of every training command: checks the commands and the ledger, measures nothing
    "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=2", "trainer.num_sanity_val_steps=0",
]


@dataclass
class Step:
    """One command of a lab's study. ``{dir}`` in ``argv`` is this step's folder, ``{lab}`` the lab's folder."""

    name: str
    argv: list[str]
    kind: str = "run"  # run (train.py), sweep (train.py -m), report (a script)
    needs: list[str] = field(default_factory=list)

    def arguments(self, lab_dir: Path) -> list[str]:
        """``argv`` with ``{dir}``/``{lab}`` filled in (``{{``/``}}`` become literal braces)."""
        return [a.format(dir=lab_dir / self.name, lab=lab_dir) for a in self.argv]

    def command(self, lab_dir: Path, extra: list[str]) -> list[str]:
        step_dir = lab_dir / self.name
        argv = self.arguments(lab_dir)
        if self.kind == "run":
            resume = ["ckpt_path=last"] if (ROOT / step_dir / "checkpoints" / "last.ckpt").exists() else []
            argv += [f"hydra.run.dir={step_dir}", *resume, *extra]
        elif self.kind == "sweep":
            argv += [f"hydra.sweep.dir={step_dir}", "ckpt_path=last", *extra]
        return [sys.executable, *argv]


def run(name: str, *overrides: str) -> Step:
    return Step(name, ["train.py", *overrides], "run")


def sweep(name: str, *overrides: str) -> Step:
    return Step(name, ["train.py", "-m", *overrides], "sweep")


def report(name: str, *argv: str, needs: list[str]) -> Step:
    return Step(name, list(argv), "report", needs)


# Lab 4's studies of the full pipeline: the lab-3 protocol (30 epochs, SGD, fixed lr) with aug + BN + Swish
LAB4_BASE = ("experiment=simplenn_cifar10", "data.augment=crop_flip", "model.net.norm=batchnorm", "model.net.activation=swish")

# Lab 7 where the pretrained gpt2 weights and WikiText-2's train split cannot be had (e.g. offline): the lab's
# pipeline (10% of each split's lines, batch 8, AdamW 5e-5, 500 warm-up steps + linear decay, 3 epochs, perplexity,
# greedy samples of the lab's prompt, export) on a randomly initialised 2-layer GPT-2 with the real tokenizer,
# trained on the validation text and evaluated on the test text. Full vs LoRA use data.protocol=dynamic: the lab's
# examples and batches (47 steps an epoch, 141 in all), padded per batch instead of to 1024, which leaves every real
# token's loss as it is and costs a fraction of the CPU time; small_protocols measures tokens/s of all three.
GPT2_SMALL = (
    "experiment=gpt2_full", "model.net.pretrained=null",
    "model.net.architecture={{model_type:gpt2,n_layer:2,n_head:2,n_embd:128}}",
    "data.tokenizer=${{paths.data_dir}}/gpt2-tokenizer", "data.splits.train=validation", "data.splits.val=test",
)

LABS: dict[str, list[Step]] = {
    "lms": [  # lab 1 (docs/labs.md)
        run("reference", "experiment=lms"),
        sweep("rates", "experiment=lms", "sweep=lms_rates"),
        report("rates_report", "scripts/lms_report.py", "{lab}/rates", needs=["rates"]),
    ],
    "layers": [  # lab 2 (docs/labs.md)
        Step("simplenn3", ["scripts/analyze.py", "hydra.run.dir={dir}"], "report"),
        Step("resnet20", ["scripts/analyze.py", "model=resnet20", "hydra.run.dir={dir}"], "report"),
    ],
    "simplenn": [  # lab 3 (docs/labs.md): fixed lr and step decay, the default seed (make train's) and seeds 1-3
        sweep("fixed_lr", "experiment=simplenn_cifar10", "seed=12345,1,2,3"),
        sweep("step_decay", "experiment=simplenn_cifar10_decay", "seed=12345,1,2,3"),
        report("fixed_lr_report", "scripts/report.py", "{lab}/fixed_lr", needs=["fixed_lr"]),
        report("step_decay_report", "scripts/report.py", "{lab}/step_decay", needs=["step_decay"]),
    ],
    "robust": [  # lab 4 (docs/labs.md)
        sweep("augment", "experiment=simplenn_cifar10", "sweep=robust_augment"),
        sweep("batchnorm", "experiment=simplenn_cifar10", "data.augment=crop_flip", "sweep=robust_batchnorm"),
        sweep(
            "activation", "experiment=simplenn_cifar10", "data.augment=crop_flip", "model.net.norm=batchnorm",
            "sweep=robust_activation",
        ),
        run("best", "experiment=simplenn_robust"),
        sweep("lr", *LAB4_BASE, "sweep=robust_lr"),
        sweep("l2", *LAB4_BASE, "sweep=robust_l2"),
        sweep("l1_vs_l2", *LAB4_BASE, "sweep=robust_l1_vs_l2"),
        *(
            report(f"{name}_report", "scripts/report.py", f"{{lab}}/{name}", needs=[name])
            for name in ("augment", "batchnorm", "activation", "lr", "l2", "l1_vs_l2")
        ),
        report(
            "l1_vs_l2_weights", "scripts/compare_weights.py", "{lab}/l1_vs_l2/0", "{lab}/l1_vs_l2/1",
            "--labels", "L1", "L2", "--out", "{lab}/l1_vs_l2/weights.png", needs=["l1_vs_l2"],
        ),
    ],
    "resnet20": [  # lab 5: the paper's 200-epoch recipe, and the fast recipe (<= 60 epochs)
        run("reference", "experiment=resnet20"),
        run("fast", "experiment=resnet20_fast"),
        run("fast_cpu", "experiment=resnet20_fast_cpu"),  # bf16 + channels_last, 28 epochs: <= 25 min on 2 cores
        Step(
            "predictions",
            ["predict.py", "run_dir={lab}/reference", "input=${{paths.data_dir}}/cifar-10-batches-py/test_batch",
             "hydra.run.dir={dir}"],
            "report", ["reference"],
        ),
    ],
    "imdb": [  # lab 6 (docs/labs.md): the reference over 3 seeds, and the strong setting
        sweep("reference", "experiment=lstm_imdb", "seed=1,2,3"),  # the course template's initialisation
        sweep("reference_normal_init", "experiment=lstm_imdb", "model.net.init=default",
              "model.net.embedding_init_std=0.05", "seed=1,2,3"),
        run("strong", "experiment=lstm_imdb_strong"),
        report("reference_report", "scripts/sentiment_report.py", "{lab}/reference/0", needs=["reference"]),
        report("strong_report", "scripts/sentiment_report.py", "{lab}/strong", needs=["strong"]),
    ],
    "gpt2": [  # lab 7 (docs/labs.md): needs the pretrained gpt2 weights and WikiText-2's train split
        sweep("full_vs_lora", "experiment=gpt2_full", "sweep=gpt2_finetune"),
        report("compare", "scripts/compare_lm.py", "{lab}/full_vs_lora", needs=["full_vs_lora"]),
        # what a machine without them can record: the lab's pipeline on a small random GPT-2 (see GPT2_SMALL)
        sweep("small_full_vs_lora", *GPT2_SMALL, "data.protocol=dynamic", "sweep=gpt2_finetune"),
        report("small_compare", "scripts/compare_lm.py", "{lab}/small_full_vs_lora", needs=["small_full_vs_lora"]),
        sweep("small_protocols", *GPT2_SMALL, "data.protocol=lab,dynamic,packed", "trainer.max_steps=20",
              "++trainer.limit_val_batches=5", "++trainer.limit_test_batches=5"),
        report("lora_params", "scripts/lora_params.py", "--out", "{dir}", needs=[]),
    ],
}


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
    args = parser.parse_args(argv)
    if args.list or not args.lab:
        for lab, steps in LABS.items():
            print(f"{lab}: {', '.join(step.name for step in steps)}")
        return 0 if args.list else 2

    steps = LABS[args.lab]
    unknown = set(args.only or []) - {step.name for step in steps}
    if unknown:
        print(f"error: {args.lab} has no step {', '.join(sorted(unknown))}; steps: "
              f"{', '.join(s.name for s in steps)}", file=sys.stderr)
        return 2
    out = args.out or (QUICK_OUT if args.quick else OUT)
    ledger_dir = args.ledger or (ROOT / "docs" / "results" if out == OUT else out / "results")
    if args.quick:
        extra = [*QUICK, *extra]
    lab_dir = out / args.lab
    state_file = ROOT / lab_dir / "reproduce.json"
    state = _load_state(state_file)
    commit, where = git_commit(ROOT), machine()
    failed: list[str] = []
    for step in steps:
        if args.only and step.name not in args.only:
            continue
        step_extra = extra if step.kind != "report" else []
        command = step.command(lab_dir, step_extra)
        printable = shlex.join(["python", *command[1:]])
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
        print(f"[{args.lab}] {step.name}: {printable}", flush=True)
        started = time.time()
        returncode = subprocess.run(command, cwd=ROOT, check=False).returncode
        state[step.name] = {
            "command": printable, "kind": step.kind,
            "overrides": [a for a in step.arguments(lab_dir) if "=" in a] + step_extra,
            "status": "ok" if returncode == 0 else "failed", "returncode": returncode,
            "seconds": round(time.time() - started, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "commit": commit, "machine": where, "quick": args.quick,
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


if __name__ == "__main__":
    sys.exit(main())
