"""Start-up time of the entry points: how long until a lab is ready to train, against the cost of its imports.

Each measurement is a fresh process (median of 3; 1 with --quick):
- baselines: the bare interpreter, ``import torch``, ``import lightning`` (the floor any Lightning script pays);
- ``train.py <lab> --cfg job``: Hydra composes the config (plugin scan included) and prints it;
- ready to fit: compose + instantiate data module, task and Trainer for the LMS, CIFAR and GPT-2 labs,
  reporting which heavy libraries got imported (transformers/peft must stay out of the LMS and CIFAR labs);
- ``python -X importtime -c "import dllabs.cli"``: what importing the CLI module costs (its heavy imports
  are deferred into ``train``).
- ``train.py experiment=lms``, the whole command (compose, train, test, metrics.json, figures), and the part of
  ``import lightning`` spent importing transformers (``-X importtime``).
Note: ``import lightning`` itself imports torchmetrics (``lightning.pytorch.utilities.types`` does ``from
torchmetrics import Metric``), whose ``__init__`` imports every functional metric, and
``torchmetrics.functional.text.bert`` does ``from transformers import AutoModel, AutoTokenizer`` whenever
transformers is installed (upstream: Lightning-AI/torchmetrics#2242, lazy-import PR #2216 not merged as of
torchmetrics 1.9). dllabs cannot avoid it without patching installed packages or hiding an installed package
from its importers, so with the ``nlp`` extra that cost is part of every lab's floor; an environment installed
without ``[nlp]`` does not pay it.

    python benchmarks/bench_startup.py [--quick]
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from common import ROOT, compare, main_for, row, run_python

NAME = "startup"
HEAVY = ("transformers", "peft", "datasets", "torchvision", "lightning", "matplotlib", "pandas", "scipy")
LABS = {
    "LMS": ["experiment=lms"],
    "CIFAR": ["experiment=simplenn_cifar10", "data.download=false"],
    "GPT-2": ["experiment=gpt2_lora"],  # + a tiny saved model from tests/fixtures/wikitext.py (no download)
}

READY = r"""
import json, sys, time
from pathlib import Path
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict
from dllabs.resolvers import register_resolvers
register_resolvers()
root = Path.cwd()
with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
    cfg = compose("train", overrides=sys.argv[1:], return_hydra_config=True)
with open_dict(cfg):
    cfg.hydra.runtime.output_dir = "/tmp/dllabs-bench-startup"
    cfg.hydra.runtime.cwd = str(root)
HydraConfig.instance().set_config(cfg)
from dllabs.cli import build_task
datamodule = instantiate(cfg.data)
task = build_task(cfg)
trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, default_root_dir="/tmp/dllabs-bench-startup")
print(json.dumps({"heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


def _timed(args: list[str], repeats: int) -> tuple[float, str]:
    """Median seconds of ``python *args`` over ``repeats`` runs (``{repeat}`` in an argument: the run's number)."""
    times, stdout = [], ""
    for repeat in range(repeats):
        seconds, done = run_python([arg.replace("{repeat}", str(repeat)) for arg in args])
        if done.returncode != 0:
            raise RuntimeError(f"python {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        times.append(seconds)
        stdout = done.stdout
    return statistics.median(times), stdout


def import_profile() -> tuple[float, list[tuple[str, float]]]:
    """Cumulative import time of dllabs.cli and the biggest packages it pulls in (largest first)."""
    _, done = run_python(["-X", "importtime", "-c", "import dllabs.cli"])
    total, packages = 0.0, {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if not match:
            continue
        name, seconds = match.group(3), int(match.group(2)) / 1e6
        if name == "dllabs.cli":
            total = seconds
        elif "." not in name and name != "dllabs":
            packages[name] = max(packages.get(name, 0.0), seconds)
    return total, sorted(packages.items(), key=lambda item: item[1], reverse=True)[:4]


def transformers_share_of_lightning() -> float:
    """Seconds of ``import lightning`` spent importing transformers (cumulative, ``-X importtime``)."""
    _, done = run_python(["-X", "importtime", "-c", "import lightning"])
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*transformers$", line)
        if match:
            return int(match.group(1)) / 1e6
    return 0.0


def _tiny_gpt2(folder: Path) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import wikitext

    return wikitext.make(folder)


def run(quick: bool) -> list[dict]:
    repeats = 1 if quick else 3
    scratch = tempfile.TemporaryDirectory()
    labs = {**LABS, "GPT-2": [*LABS["GPT-2"], *_tiny_gpt2(Path(scratch.name))]}
    rows = [
        row(NAME, "python -c pass", _timed(["-c", "pass"], repeats)[0], "s"),
        row(NAME, "import torch", _timed(["-c", "import torch"], repeats)[0], "s"),
        row(NAME, "import lightning", _timed(["-c", "import lightning"], repeats)[0], "s"),
    ]
    rows.append(
        row(NAME, "import lightning: of which transformers", transformers_share_of_lightning(), "s",
            note="torchmetrics.functional.text.bert imports it when installed")
    )
    with tempfile.TemporaryDirectory() as runs:  # a new run folder each time: a finished run's folder is refused
        seconds, _ = _timed(["train.py", "experiment=lms", f"hydra.run.dir={runs}/{{repeat}}"], repeats)
    rows.append(row(NAME, "train.py experiment=lms (whole command)", seconds, "s"))
    for lab, overrides in LABS.items():
        if lab != "GPT-2":
            seconds, _ = _timed(["train.py", *overrides, "--cfg", "job"], repeats)
            rows.append(row(NAME, f"train.py {lab} --cfg job", seconds, "s"))
    for lab, overrides in labs.items():
        try:
            seconds, stdout = _timed(["-c", READY, *overrides], repeats)
        except RuntimeError as err:
            rows.append(row(NAME, f"{lab}: ready to fit", float("nan"), "s", note=str(err).splitlines()[-1][:120]))
            continue
        heavy = json.loads(stdout.strip().splitlines()[-1])["heavy"]
        deferred = [m for m in ("transformers", "peft", "datasets") if m not in heavy]
        rows.append(
            row(
                NAME, f"{lab}: ready to fit", seconds, "s", imported=heavy,
                note=f"imported: {', '.join(heavy)}; not: {', '.join(deferred) or '-'}",
            )
        )
        compare(rows, f"{lab}: ready to fit", "import lightning", better="lower")
    scratch.cleanup()
    total, top = import_profile()
    rows.append(
        row(NAME, "import dllabs.cli (-X importtime)", total, "s", note=", ".join(f"{m} {s:.2f}s" for m, s in top))
    )
    return rows


if __name__ == "__main__":
    sys.exit(main_for(NAME, run, __doc__))
