"""The seven labs, each described once: experiments, sweeps, reproduce steps, metrics, references and figures.

``make reproduce`` (``scripts/reproduce.py``) runs a lab's :class:`Step`\\ s, the results ledger
(``dllabs.reporting.ledger``) reads each step's reference, figure and the lab's metrics from here, and the table
of ``docs/labs.md`` is rendered from here (``python scripts/labs_table.py``; ``tests/test_labs_doc.py`` checks it).
A name that is not here (a lab, a step) is a :class:`~dllabs.errors.ConfigError`, never a silent ``None``.
The references are SPEC.md's: the numbers people got doing these labs by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dllabs.errors import ConfigError
from dllabs.reporting.cifar_exact_rows import exact_row_accuracy


@dataclass(frozen=True)
class Metric:
    """A number shown in the ledger: ``path`` into metrics.json (``a.b``; keys may hold ``/``), how to show it."""

    label: str
    path: str
    fmt: str = "{:.4f}"
    percent: bool = False

    def read(self, record: dict[str, Any]) -> float | None:
        node: Any = record
        path = self.path
        while path and isinstance(node, dict):
            if path in node:  # the rest is one key (``val/ppl``)
                node, path = node[path], ""
            else:
                head, _, path = path.partition(".")
                node = node.get(head)
        if path:
            node = None
        return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        if not math.isfinite(value):
            return str(value)
        return f"{100 * value:.2f}%" if self.percent else self.fmt.format(value)


@dataclass(frozen=True)
class Step:
    """One command of a lab's study, in ``outputs/reproduce/<lab>/<name>/``.

    ``kind``: ``run`` (``train.py``), ``sweep`` (``train.py -m``) or ``report`` (a script over earlier steps).
    ``{dir}`` in ``argv`` is this step's folder, ``{lab}`` the lab's folder (``{{``/``}}`` are literal braces).
    ``reference``: the lab's number to compare with (shown beside the step's results); ``figure``: a file of the
    step's folder that the ledger shows.
    """

    name: str
    argv: tuple[str, ...]
    kind: str = "run"
    needs: tuple[str, ...] = ()
    reference: str | None = None
    figure: str | None = None

    def arguments(self, lab_dir: Path) -> list[str]:
        """``argv`` with ``{dir}``/``{lab}`` filled in."""
        return [a.format(dir=lab_dir / self.name, lab=lab_dir) for a in self.argv]


def run(name: str, *overrides: str, reference: str | None = None, figure: str | None = None) -> Step:
    return Step(name, ("train.py", *overrides), "run", reference=reference, figure=figure)


def sweep(name: str, *overrides: str, reference: str | None = None, figure: str | None = None) -> Step:
    return Step(name, ("train.py", "-m", *overrides), "sweep", reference=reference, figure=figure)


def report(name: str, *argv: str, needs: tuple[str, ...] = (), reference: str | None = None) -> Step:
    return Step(name, argv, "report", needs, reference=reference)


@dataclass(frozen=True)
class Code:
    """Where a lab lives in the code: the cells of its row in docs/labs.md (paths under ``src/dllabs/``)."""

    net: str
    task: str
    data: str
    callbacks: str
    scripts: str
    tests: str


@dataclass(frozen=True)
class Lab:
    """One lab. ``name`` is ``make reproduce LAB=<name>``; ``experiments`` maps each ``experiment=`` option to a
    few words on it ('' for none); ``runs_with`` is how a lab without an experiment is run; ``brief``: the
    metric labels of the README's table (default: the first two); ``extra``: numbers measured per finished run
    beside metrics.json (read by ``extra.*`` metrics)."""

    name: str
    number: int
    title: str
    code: Code
    steps: tuple[Step, ...]
    experiments: dict[str, str] = field(default_factory=dict)
    sweeps: tuple[str, ...] = ()
    runs_with: str = ""
    metrics: tuple[Metric, ...] = ()
    brief: tuple[str, ...] | None = None
    extra: Callable[[Path], dict[str, Any]] | None = None

    def step(self, name: str) -> Step:
        """The step called ``name``; a :class:`ConfigError` naming the lab's steps when there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise ConfigError(f"lab {self.name} has no step {name}; steps: {', '.join(s.name for s in self.steps)}")


ACC = (
    Metric("best val acc", "best_score", percent=True),
    Metric("test acc", "metrics.test/acc", percent=True),
    Metric("train acc", "metrics.train/acc", percent=True),
)
CIFAR_EXTRA = (
    Metric("test acc, 1k exact rows", "extra.test_acc_exact_rows", percent=True),
    Metric("test acc, 9k JPEG rows", "extra.test_acc_jpeg_rows", percent=True),
)

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
ROBUST_STUDIES = ("augment", "batchnorm", "activation", "lr", "l2", "l1_vs_l2")

LABS: dict[str, Lab] = {lab.name: lab for lab in (
    Lab(
        "lms", 1, "LMS adaptive filter",
        Code(
            net="`nets/linear.py` `LinearFilter`",
            task="`tasks/regression.py` `RegressionTask` (one update per sample)",
            data="`data/lms.py` `LMSDataModule` (seeded, `.mat/.csv/.npz`)",
            callbacks="`callbacks/lms.py` `LMSReport` (Wiener solution, bounds, `lms_mse.png`, `lms_planes.png`), "
            "selected by `conf/model/lms.yaml`",
            scripts="`lms_report.py`", tests="`test_lms.py`",
        ),
        steps=(
            run("reference", "experiment=lms", figure="lms_mse.png",
                reference="W* = [1.00068, 1.00061, -2.00032], MSE floor 1.008e-4 (plain mean) on the lab's dataset"),
            sweep("rates", "experiment=lms", "sweep=lms_rates", figure="lms_sweep.png",
                  reference="r = 0.005 ... 0.5 converge, r = 1 diverges (the run must say so)"),
            report("rates_report", "scripts/lms_report.py", "{lab}/rates", needs=("rates",)),
            report("workers_rate", "scripts/search_workers_rate.py", "--minutes", "5", "--out", "{dir}", "--",
                   "experiment=lms", "optimizer.lr=tag(log, interval(1e-3, 0.05))",
                   reference="trials finished per hour, 2 workers on one study against 1 (issue 26)"),
        ),
        experiments={"lms": ""}, sweeps=("lms_rates",),
        metrics=(
            Metric("final MSE", "metrics.val/mse", "{:.4e}"),
            Metric("Wiener MSE floor", "results.wiener_mse", "{:.4e}"),
            Metric("distance to W*", "results.distance_to_wiener", "{:.2e}"),
            Metric("2/lambda_max", "results.stability_bound", "{:.3f}"),
            Metric("2/trace(R)", "results.mean_square_bound", "{:.3f}"),
        ),
    ),
    Lab(
        "layers", 2, "layer analysis (SimpleNN-3)",
        Code(
            net="`nets/simplenn3.py` `SimpleNN3` on `nets/layers.py` `Conv2d`/`Linear`",
            task="(none: the net alone)", data="(an example input)",
            callbacks="(the script writes `layer_table.*`, histograms)", scripts="`analyze.py`",
            tests="`test_layers.py`, `test_layer_table.py`, `test_analyze_cli.py`",
        ),
        steps=(
            report("simplenn3", "scripts/analyze.py", "hydra.run.dir={dir}",
                   reference="conv1 1,200 params / 1,228,800 MACs; conv2 2,304 / 665,856; conv3 25,088 / 903,168; "
                   "fc1 9,216 / 9,216; fc2 320 / 320 (weights only)"),
            report("resnet20", "scripts/analyze.py", "model=resnet20", "hydra.run.dir={dir}"),
        ),
        runs_with="`scripts/analyze.py` (`conf/analyze.yaml`, any `model=`)",
    ),
    Lab(
        "simplenn", 3, "SimpleNN on CIFAR-10",
        Code(
            net="`nets/simplenn.py` `SimpleNN`", task="`tasks/classification.py` `ClassificationTask`",
            data="`data/cifar10.py` `CIFAR10DataModule` (+ `data/cifar_inputs.py`, `data/device_loader.py`)",
            callbacks="`conf/callbacks/default.yaml`", scripts="`report.py`, `../predict.py`, `../eval.py`",
            tests="`test_simplenn.py`, `test_cifar_data.py`, `test_realdata_cifar.py`",
        ),
        steps=(  # fixed lr and step decay, the default seed (make train's) and seeds 1-3
            sweep("fixed_lr", "experiment=simplenn_cifar10", "seed=12345,1,2,3",
                  reference="~66% val (train ~90%)", figure="report_curves.png"),
            sweep("step_decay", "experiment=simplenn_cifar10_decay", "seed=12345,1,2,3",
                  reference="~67% val", figure="report_curves.png"),
            report("fixed_lr_report", "scripts/report.py", "{lab}/fixed_lr", needs=("fixed_lr",)),
            report("step_decay_report", "scripts/report.py", "{lab}/step_decay", needs=("step_decay",)),
        ),
        experiments={"simplenn_cifar10": "", "simplenn_cifar10_decay": ""},
        sweeps=("simplenn_lr", "simplenn_schedule", "optuna_simplenn"),
        metrics=ACC + CIFAR_EXTRA, extra=exact_row_accuracy,
    ),
    Lab(
        "robust", 4, "a more robust CIFAR-10 pipeline",
        Code(
            net="`SimpleNN` (`norm`, `activation`; `nets/activations.py`)",
            task="`ClassificationTask` + `regularizers.py` (L1/L2)",
            data="`CIFAR10DataModule` (`augment=crop_flip`, `data/transforms.py`)", callbacks="default",
            scripts="`report.py`, `compare_weights.py`",
            tests="`test_robust_sweeps.py`, `test_compare_weights.py`, `test_divergence.py`",
        ),
        steps=(
            sweep("augment", "experiment=simplenn_cifar10", "sweep=robust_augment",
                  reference="aug on ~70-71% val", figure="report_curves.png"),
            sweep("batchnorm", "experiment=simplenn_cifar10", "data.augment=crop_flip", "sweep=robust_batchnorm",
                  reference="+BN ~71-72% val; BN should allow lr 0.1", figure="report_curves.png"),
            sweep("activation", "experiment=simplenn_cifar10", "data.augment=crop_flip", "model.net.norm=batchnorm",
                  "sweep=robust_activation", reference="+Swish ~73% val", figure="report_curves.png"),
            run("best", "experiment=simplenn_robust", reference=">= 70% val (target), aim 75%", figure="curves.png"),
            sweep("lr", *LAB4_BASE, "sweep=robust_lr", figure="report_curves.png",
                  reference="best lr ~0.01-0.05; lr 1.0 fails (recorded as failed/diverged)"),
            sweep("l2", *LAB4_BASE, "sweep=robust_l2", reference="L2 sweep 1e-2 ... 0 at lr 0.01",
                  figure="report_curves.png"),
            sweep("l1_vs_l2", *LAB4_BASE, "sweep=robust_l1_vs_l2", reference="L1 ~71.7% vs L2 ~71.2% val",
                  figure="weights.png"),
            *(report(f"{name}_report", "scripts/report.py", f"{{lab}}/{name}", needs=(name,)) for name in ROBUST_STUDIES),
            report("l1_vs_l2_weights", "scripts/compare_weights.py", "{lab}/l1_vs_l2/0", "{lab}/l1_vs_l2/1",
                   "--labels", "L1", "L2", "--out", "{lab}/l1_vs_l2/weights.png", needs=("l1_vs_l2",)),
            # the lab-4 search space with a CPU budget (20 seeded TPE trials of 8 epochs on 10k images; issue 26):
            # without pruning, then with hyperband, then with successive halving (Optuna's reduction factor 4: a rung
            # after 1 and 4 epochs, the best quarter promoted; then 2: rungs after 1, 2, 4 epochs, the best half
            # promoted), then all compared
            sweep("search_tpe", "experiment=simplenn_robust", "sweep=optuna_simplenn_budget",
                  "hydra.sweeper.study_name=simplenn_robust_budget"),
            sweep("search_hyperband", "experiment=simplenn_robust", "sweep=optuna_simplenn_budget",
                  "hydra.sweeper.study_name=simplenn_robust_budget_hyperband", "hydra/sweeper/pruner=hyperband"),
            sweep("search_sha", "experiment=simplenn_robust", "sweep=optuna_simplenn_budget",
                  "hydra.sweeper.study_name=simplenn_robust_budget_sha", "hydra/sweeper/pruner=successive_halving"),
            sweep("search_sha_rf2", "experiment=simplenn_robust", "sweep=optuna_simplenn_budget",
                  "hydra.sweeper.study_name=simplenn_robust_budget_sha_rf2", "hydra/sweeper/pruner=successive_halving",
                  "hydra.sweeper.pruner.reduction_factor=2"),
            report("search_compare", "scripts/compare_searches.py", "{lab}/search_tpe", "{lab}/search_hyperband",
                   "{lab}/search_sha", "{lab}/search_sha_rf2", "--out", "{dir}",
                   needs=("search_tpe", "search_hyperband", "search_sha", "search_sha_rf2"),
                   reference="pruned: >= 2.5x fewer epochs for a best val acc within 1 point (issue 26)"),
        ),
        experiments={"simplenn_robust": ""},
        sweeps=(*(f"robust_{name}" for name in ROBUST_STUDIES), "optuna_simplenn_budget"),
        metrics=ACC,
    ),
    Lab(
        "resnet20", 5, "ResNet-20 on CIFAR-10",
        Code(
            net="`nets/resnet.py` `ResNet` (6n+2, shortcut A/B)",
            task="`ClassificationTask` (`tta_flip`, `label_smoothing`)",
            data="`CIFAR10DataModule` (`loader=device`)",
            callbacks="default, `callbacks=ema` (`callbacks/weight_averaging.py`)",
            scripts="`../predict.py`, `benchmarks/gpu_check.py`",
            tests="`test_resnet.py`, `test_device_loader.py`, `test_ema_tta.py`, `test_predict.py`, `test_gpu_check.py`",
        ),
        steps=(  # the paper's 200-epoch recipe, and the fast recipe (<= 60 epochs)
            run("reference", "experiment=resnet20", reference="paper 91.25% test; public re-runs 91.5-92.4%",
                figure="curves.png"),
            run("fast", "experiment=resnet20_fast", reference=">= 91.25% val in <= 60 epochs", figure="curves.png"),
            run("fast_cpu", "experiment=resnet20_fast_cpu", reference=">= 93.0% val in <= 25 min on a 2-core CPU (issue 27)",
                figure="curves.png"),  # bf16 + channels_last, 28 epochs
            # the same run with torch.compile: whole-run wall time against fast_cpu's (make bench's compile row is a fixed
            # batch; an epoch's last, smaller batch recompiles for dynamic shapes)
            run("fast_cpu_compile", "experiment=resnet20_fast_cpu", "compile=true",
                reference="fast_cpu's wall time and accuracy, or compile stays off", figure="curves.png"),
            Step("predictions", ("predict.py", "run_dir={lab}/reference",
                                 "input=${{paths.data_dir}}/cifar-10-batches-py/test_batch", "hydra.run.dir={dir}"),
                 "report", ("reference",)),
        ),
        experiments={"resnet20": "paper, 200 epochs", "resnet20_fast": "<= 60 epochs",
                     "resnet20_fast_cpu": "the fast recipe in bf16-mixed with channels_last, 28 epochs"},
        sweeps=("optuna_resnet20",),
        metrics=ACC + CIFAR_EXTRA, extra=exact_row_accuracy,
        brief=("best val acc", "test acc", "test acc, 1k exact rows"),
    ),
    Lab(
        "imdb", 6, "LSTM sentiment on IMDB",
        Code(
            net="`nets/lstm.py` `LSTMClassifier` (`init=template`)", task="`ClassificationTask`",
            data="`data/imdb.py` `IMDBDataModule` (+ `data/imdb_sources.py`, `data/corpus.py`, `data/text.py`, "
            "`data/review_inputs.py`)",
            callbacks="default", scripts="`sentiment_report.py`, `../predict.py`",
            tests="`test_imdb.py`, `test_lstm.py`, `test_realdata_imdb.py`",
        ),
        steps=(  # the reference over 3 seeds (the course template's initialisation, and N(0, 0.05)), the strong setting
            sweep("reference", "experiment=lstm_imdb", "seed=1,2,3", "cpu_precision=32-true",
                  reference="~86.4-87.3% test"),
            sweep("reference_normal_init", "experiment=lstm_imdb", "model.net.init=default",
                  "model.net.embedding_init_std=0.05", "seed=1,2,3",
                  reference="~86.4-87.3% test (the lab initialises as its template does: the reference step)"),
            # the reference in bf16-mixed, what experiment=lstm_imdb uses on a CPU with native bf16 (cpu_precision=auto)
            sweep("reference_bf16", "experiment=lstm_imdb", "seed=1,2,3", "cpu_precision=bf16-mixed",
                  reference="within 0.5 points of the fp32 reference's test acc (issue 27)"),
            run("strong", "experiment=lstm_imdb_strong", reference="should beat the reference (aim >= 89%)",
                figure="curves.png"),
            report("reference_report", "scripts/sentiment_report.py", "{lab}/reference/0", needs=("reference",)),
            report("strong_report", "scripts/sentiment_report.py", "{lab}/strong", needs=("strong",)),
        ),
        experiments={"lstm_imdb": "", "lstm_imdb_strong": ""},
        metrics=(
            Metric("test acc", "metrics.test/acc", percent=True),
            Metric("best val acc", "best_score", percent=True),
            Metric("train acc", "metrics.train/acc", percent=True),
        ),
    ),
    Lab(
        "gpt2", 7, "GPT-2 fine-tuning on WikiText-2",
        Code(
            net="`nets/causal_lm.py` `causal_lm` (HF model, LoRA applied when built)",
            task="`tasks/language_model.py` `LanguageModelTask`",
            data="`data/wikitext.py` `WikiTextDataModule` (owns the tokenizer)",
            callbacks="`conf/callbacks/lm.yaml`: `callbacks/perplexity.py`, `callbacks/text_samples.py`, "
            "`callbacks/hf_export.py`, `callbacks/throughput.py`",
            scripts="`generate.py`, `compare_lm.py`, `lora_params.py`",
            tests="`test_gpt2.py`, `test_wikitext.py`, `test_ledger.py`",
        ),
        steps=(  # full_vs_lora needs the pretrained gpt2 weights and WikiText-2's train split
            sweep("full_vs_lora", "experiment=gpt2_full", "sweep=gpt2_finetune", figure="lm_compare.png",
                  reference="10% val slice: pretrained 43.0 -> full 27.1, LoRA 30.3; A100: full 12 min, LoRA 9 min"),
            report("compare", "scripts/compare_lm.py", "{lab}/full_vs_lora", needs=("full_vs_lora",)),
            # what a machine without them can record: the lab's pipeline on a small random GPT-2 (see GPT2_SMALL)
            sweep("small_full_vs_lora", *GPT2_SMALL, "data.protocol=dynamic", "sweep=gpt2_finetune",
                  figure="lm_compare.png",
                  reference="none (the lab starts from the pretrained gpt2, this from a random 2-layer GPT-2); "
                  "the lab's schedule is 459 steps an epoch, 1,377 in all, on the train split"),
            report("small_compare", "scripts/compare_lm.py", "{lab}/small_full_vs_lora", needs=("small_full_vs_lora",)),
            sweep("small_protocols", *GPT2_SMALL, "data.protocol=lab,dynamic,packed", "trainer.max_steps=20",
                  "++trainer.limit_val_batches=5", "++trainer.limit_test_batches=5",
                  reference="lab pads every line to 1024; dynamic pads per batch; packed has no padding"),
            report("lora_params", "scripts/lora_params.py", "--out", "{dir}",
                   reference="2,359,296 for r 64 on c_attn of gpt2 (124M)"),
        ),
        experiments={"gpt2_full": "", "gpt2_lora": "= `gpt2_full` + `finetune: lora`"}, sweeps=("gpt2_finetune",),
        metrics=(
            Metric("val ppl", "metrics.val/ppl", "{:.2f}"),
            Metric("test ppl", "metrics.test/ppl", "{:.2f}"),
            Metric("val ppl before", "results.perplexity.val_before", "{:.2f}"),
            Metric("test ppl, lab's NLL/mask count", "metrics.test/ppl_lab_maskcount", "{:.2f}"),
            Metric("optimiser steps", "results.train_steps", "{:.0f}"),
            Metric("tokens/s", "results.tokens_per_s", "{:,.0f}"),
            Metric("tokens/s incl. padding", "results.padded_tokens_per_s", "{:,.0f}"),
            Metric("trainable params", "results.params.trainable", "{:,.0f}"),
        ),
        brief=("val ppl before", "val ppl", "optimiser steps", "tokens/s"),
    ),
)}


def lab(name: str) -> Lab:
    """The lab called ``name`` (``make reproduce LAB=<name>``); a :class:`ConfigError` naming the labs otherwise."""
    if name not in LABS:
        raise ConfigError(f"no lab {name}; labs: {', '.join(LABS)}")
    return LABS[name]


TABLE_BLOCK = re.compile(r"(<!-- labs -->\n)(.*?)(<!-- /labs -->)", re.DOTALL)  # where docs/labs.md holds table()
TABLE_HEADER = ("lab", "experiments (`experiment=`) and sweeps (`sweep=`)", "net", "task", "data module", "callbacks",
                "scripts", "tests", "ledger (`make reproduce LAB=`)")


def table_row(entry: Lab) -> str:
    """The lab's row of docs/labs.md."""
    experiments = ", ".join(f"`{name}`" + (f" ({note})" if note else "") for name, note in entry.experiments.items())
    runs = "; ".join(part for part in (experiments or entry.runs_with, ", ".join(f"`{s}`" for s in entry.sweeps)) if part)
    code = entry.code
    cells = (f"{entry.number} {entry.title}", runs, code.net, code.task, code.data, code.callbacks, code.scripts,
             code.tests, f"`{entry.name}`")
    return "| " + " | ".join(cells) + " |"


def table() -> str:
    """docs/labs.md's table: one row per lab, in lab order."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    return "\n".join([*lines, *(table_row(entry) for entry in sorted(LABS.values(), key=lambda e: e.number))]) + "\n"
