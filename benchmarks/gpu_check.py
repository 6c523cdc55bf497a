"""The prepared GPU check: speed against baselines measured in the same run, and every training path run on CUDA.

Written for one short device lease (<= 8 minutes on one GPU, see benchmarks/gpu_check.sh, which first installs
hydra-core/omegaconf/antlr4 from the wheels in .whl/ when the machine lacks them). Three parts:

- ``resnet20``: ResNet-20 training images/s on synthetic uint8 images of CIFAR-10's shape (the real data cannot
  travel with a 64 MiB working tree; speed does not depend on pixel values): plain PyTorch loop vs the framework
  (Lightning + ClassificationTask) and vs a bare LightningModule (Lightning's floor), fp32 vs bf16-mixed,
  + channels_last, + torch.compile; the device loader vs the DataLoader path; the projected training time (train
  steps only, no validation) of ``resnet20_fast`` and of the 200-epoch paper recipe ``resnet20`` from their configs'
  epochs and batch sizes.
- ``gpt2``: GPT-2 at the real 124M shape with random weights and the real tokenizer, on the real WikiText-2
  validation lines (carried in .gpu_check/, see ``make gpu-assets``): full fine-tuning vs LoRA (the lab's r 64 on
  c_attn) for the ``lab`` (each line padded to 1024), ``dynamic`` (padded to the batch's longest line) and
  ``packed`` protocols, batch 8, bf16 autocast: step time, tokens/s (real tokens, padding not counted), peak
  memory, and the projected time of the lab's 1,377 steps next to the course's A100 times (full 12 min, LoRA 9 min).
- ``paths``: the real ``train.py`` / ``eval.py`` / ``predict.py`` commands on generated fixture data, a few steps
  each: device loader + bf16-mixed + channels_last + compile + EMA + flip TTA (resnet20_fast), checkpoint resume
  (``ckpt_path``), eval and predict from the run folder, the DataLoader path in fp32, and the bidirectional LSTM.

Writes ``gpu_check_<cpu|gpu>.json`` and ``gpu_check_<cpu|gpu>.txt`` (the table) into ``--out``.

    bash benchmarks/gpu_check.sh                              # on the GPU machine (make gpu-check)
    python benchmarks/gpu_check.py --device cpu --quick       # tiny sizes: proves the script end to end
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from common import ROOT, compare, format_table, machine_info, row, run_python, save_results

NAME = "gpu_check"
ASSETS = ROOT / ".gpu_check"
TRAIN_IMAGES = 45_000  # CIFAR-10's training split after the 5k validation images
LAB_STEPS = 1_377  # the lab: 3 epochs of 459 steps of 8 lines
COURSE_A100_MINUTES = {"full": 12.0, "lora": 9.0}


def experiment(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "experiment" / f"{name}.yaml").read_text())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- ResNet-20
def resnet20(device: torch.device, quick: bool, compile_: bool) -> list[dict]:
    import bench_cifar
    from bench_cifar import DeviceLoader, synthetic_cifar

    from dllabs.data.cifar10 import MEAN, STD

    cuda = device.type == "cuda"
    steps, warmup = (60, 15) if cuda else (2, 1)
    if quick:
        steps, warmup = (20, 10) if cuda else (1, 1)
    small = not cuda and quick  # a CPU smoke: small batches, the rates then say nothing about a real run
    rows: list[dict] = []

    def measure(label: str, kind: str, batch: int, **settings) -> str:
        batch = max(8, batch // 8) if small else batch
        args = Namespace(
            steps=steps,
            warmup=warmup,
            batch_size=batch,
            precision="32-true",
            channels_last=False,
            compile=False,
        )
        for key, value in settings.items():
            setattr(args, key, value)
        if args.compile:
            args.warmup = max(args.warmup, 3)  # the first steps compile
        images, labels = synthetic_cifar((args.warmup + args.steps + 1) * batch, seed=1)
        loader = DeviceLoader(
            images, labels, batch, True, True, MEAN, STD, device, 0, True, args.channels_last
        )
        if kind == "plain":
            rate = bench_cifar.plain_loop("resnet20", loader, args, device)
        else:  # the framework, or Lightning's floor: a bare LightningModule with the plain loop's step
            module = bench_cifar.BareLightningModule if kind == "floor" else bench_cifar.ClassificationTask
            rate = bench_cifar.framework("resnet20", loader, args, device, module)
        described = f"{args.precision}{', channels_last' if args.channels_last else ''}"
        described += f"{', compile' if args.compile else ''}, batch {batch}"
        rows.append(row("resnet20", label, rate, "images/s", note=described))
        return label

    best = {"precision": "bf16-mixed", "channels_last": True, "compile": compile_}
    plain32 = measure("plain loop fp32", "plain", 128)
    fw32 = measure("framework fp32", "framework", 128)
    compare(rows, fw32, plain32, better="higher")
    compare(rows, measure("bare LightningModule fp32 (floor)", "floor", 128), plain32, better="higher")
    plain_bf16 = measure("plain loop bf16", "plain", 128, precision="bf16-mixed")
    fw_bf16 = measure("framework bf16-mixed", "framework", 128, precision="bf16-mixed")
    compare(rows, fw_bf16, fw32, better="higher")
    fw_cl = measure(
        "framework bf16 + channels_last", "framework", 128, precision="bf16-mixed", channels_last=True
    )
    compare(rows, fw_cl, fw_bf16, better="higher")
    if compile_:
        plain_best = measure("plain loop bf16 + channels_last + compile", "plain", 128, **best)
        fw_best = measure("framework bf16 + channels_last + compile", "framework", 128, **best)
        compare(rows, fw_best, fw_cl, better="higher")
        rows.append(
            {
                **next(r for r in rows if r["measurement"] == fw_best),
                "measurement": "framework vs plain, best",
            }
        )
        compare(rows, "framework vs plain, best", plain_best, better="higher")
    else:
        fw_best = fw_cl
        plain_best = plain_bf16
    compare(rows, plain_bf16, plain32, better="higher")

    fast = experiment("resnet20_fast")
    fast_batch, fast_epochs = fast["data"]["batch_size"], fast["trainer"]["max_epochs"]
    fw_fast = measure(f"framework, resnet20_fast's batch {fast_batch}", "framework", fast_batch, **best)
    paper = experiment("resnet20")
    for name, cfg, label in (("resnet20_fast", fast, fw_fast), ("resnet20", paper, fw_best)):
        rate = next(r["value"] for r in rows if r["measurement"] == label)
        epochs = cfg["trainer"]["max_epochs"]
        minutes = epochs * TRAIN_IMAGES / rate / 60
        note = f"{epochs} epochs x {TRAIN_IMAGES:,} images at the '{label}' rate; validation not counted"
        rows.append(row("resnet20", f"projected training time: {name}", minutes, "min", note=note))
    rows.append(
        row(
            "resnet20",
            "epochs: resnet20_fast vs paper",
            fast_epochs / paper["trainer"]["max_epochs"],
            "fraction",
        )
    )

    loaders = bench_cifar.bench_loaders(
        Namespace(
            loader_batches=40 if cuda and not quick else 4,
            loader_warmup=3 if cuda else 1,
            batch_size=16 if small else 128,
            workers=4 if cuda else 0,
            repeats=1,
            channels_last=False,
        ),
        device,
    )
    rows.append(row("resnet20", "data: standard DataLoader", loaders["standard_images_per_s"], "images/s"))
    rows.append(row("resnet20", "data: device loader", loaders["device_images_per_s"], "images/s"))
    compare(rows, "data: device loader", "data: standard DataLoader", better="higher")
    return rows


# ----------------------------------------------------------------------------------------------- GPT-2
def gpt2(device: torch.device, quick: bool, tokenizer_dir: Path, text: Path) -> list[dict]:
    import bench_gpt2
    from transformers import GPT2TokenizerFast

    from dllabs.data.wikitext import collate, line_examples, packed_examples, read_raw_lines

    cuda = device.type == "cuda"
    shape = (
        {"n_layer": 12, "n_head": 12, "n_embd": 768, "seq": 1024, "batch": 8}
        if cuda
        else {"n_layer": 2, "n_head": 2, "n_embd": 64, "seq": 64, "batch": 2}
    )
    steps = (3 if quick else 12) if cuda else 2
    tokenizer = GPT2TokenizerFast.from_pretrained(str(tokenizer_dir))
    lines = [line for line in read_raw_lines(text)]
    token_lists = tokenizer(lines)["input_ids"]
    block, batch = shape["seq"], shape["batch"]
    examples = {
        "lab": (line_examples(token_lists, block), block),
        "dynamic": (line_examples(token_lists, block), None),
        "packed": (packed_examples(token_lists, block), None),
    }
    generator = torch.Generator().manual_seed(0)
    rows: list[dict] = []
    lab_real_tokens = None
    for protocol, (pool, pad_to) in examples.items():
        order = torch.randperm(len(pool), generator=generator).tolist()
        batches = [
            collate([pool[i] for i in order[k * batch : (k + 1) * batch]], tokenizer.eos_token_id, pad_to)
            for k in range(steps + 2)
        ]
        for method in ("full", "lora"):
            model = bench_gpt2.build(method, {**shape}, device)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            times, real, padded = [], 0, 0
            for index, data in enumerate(batches):
                data = {key: value.to(device) for key, value in data.items()}
                synchronize(device)
                started = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    loss = model(**data).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                synchronize(device)
                if index >= 2:  # the first two steps warm up
                    times.append(time.perf_counter() - started)
                    real += int(data["attention_mask"].sum())
                    padded += data["input_ids"].numel()
            step_s = statistics.mean(times)
            tokens_per_step = real / len(times)
            memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            label = f"{protocol}: {method}"
            padding = f"{pad_to} (padded)" if pad_to else f"up to {block}"
            note = f"batch {batch} x {padding} tokens; {real / padded:.0%} of them real"
            rows.append(row("gpt2", f"{label}: step time", step_s, "s", note=note, peak_memory_gib=memory))
            rows.append(row("gpt2", f"{label}: tokens/s", tokens_per_step / step_s, "real tokens/s"))
            if memory is not None:
                rows.append(row("gpt2", f"{label}: peak memory", memory, "GiB"))
            if protocol == "lab" and method == "full":
                lab_real_tokens = tokens_per_step * LAB_STEPS
            if protocol == "packed":  # the same text as the lab's 1,377 steps, in 1024-token blocks
                minutes = lab_real_tokens / (tokens_per_step / step_s) / 60
                what = "the lab's 1,377 steps' real tokens, packed"
            else:
                minutes = LAB_STEPS * step_s / 60
                what = "1,377 steps"
            rows.append(
                row(
                    "gpt2",
                    f"{label}: projected lab time",
                    minutes,
                    "min",
                    note=f"{what}; course A100: {COURSE_A100_MINUTES[method]:g} min",
                    course_a100_min=COURSE_A100_MINUTES[method],
                )
            )
            del model, optimizer
        compare(rows, f"{protocol}: lora: step time", f"{protocol}: full: step time", better="lower")
    for protocol in ("dynamic", "packed"):
        for method in ("full", "lora"):
            compare(rows, f"{protocol}: {method}: tokens/s", f"lab: {method}: tokens/s", better="higher")
    return rows


# ----------------------------------------------------------------------------------------------- paths
def paths(device: torch.device, compile_: bool, work: Path, quick: bool = False) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import cifar10, imdb

    cuda = device.type == "cuda"
    trainer = "trainer=gpu" if cuda else "trainer=cpu"
    cifar = cifar10.make(work / "cifar")
    few = [
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "trainer.num_sanity_val_steps=0",
        "callbacks.progress_bar=null",
        "logger=csv",
    ]
    run = work / "resnet20_fast"
    resumed = work / "resnet20_fast_resumed"
    fast = [
        "train.py",
        "experiment=resnet20_fast",
        trainer,
        *cifar,
        *few,
        "data.batch_size=32",
        "data.loader=device",
        "trainer.precision=" + ("bf16-mixed" if cuda else "32-true"),
        "channels_last=true",
        f"compile={str(compile_).lower()}",
        f"hydra.run.dir={run}",
    ]
    commands: list[tuple[str, list[str], Callable[[], str | None]]] = [
        (
            "train resnet20_fast: device loader, bf16, channels_last, compile, EMA, TTA",
            fast,
            lambda: status(run),
        ),
        (
            "resume from last.ckpt for a second epoch",
            # into a new run folder: a run's folder is never given to other settings (job_folder.check_job_folder)
            [
                *fast[:-1],
                "trainer.max_epochs=2",
                f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                f"hydra.run.dir={resumed}",
            ],
            lambda: status(resumed, epochs=2),
        ),
        ("eval.py from the run folder", ["eval.py", f"run_dir={run}"], lambda: None),
        (
            "predict.py on a CIFAR batch file",
            [
                "predict.py",
                f"run_dir={run}",
                f"input={work / 'cifar' / 'cifar-10-batches-py' / 'test_batch'}",
                f"output={work / 'predictions.csv'}",
            ],
            lambda: None if (work / "predictions.csv").exists() else "no predictions.csv",
        ),
        (
            "train simplenn: DataLoader path, fp32",
            [
                "train.py",
                trainer,
                *cifar,
                *few,
                "data.loader=standard",
                "data.num_workers=2",
                f"hydra.run.dir={work / 'simplenn'}",
            ],
            lambda: status(work / "simplenn"),
        ),
        (
            "train lstm_imdb_strong: bidirectional LSTM, bf16",
            [
                "train.py",
                "experiment=lstm_imdb_strong",
                trainer,
                *imdb.make(work / "imdb"),
                *few,
                "trainer.precision=" + ("bf16-mixed" if cuda else "32-true"),
                f"hydra.run.dir={work / 'lstm'}",
            ],
            lambda: status(work / "lstm"),
        ),
    ]
    if quick and not cuda:  # the CPU smoke: the fast recipe, its resume, eval and predict prove the code path; the
        commands = commands[:4]  # DataLoader and BiLSTM commands are plain CPU runs the test suite has already
    rows = []
    for label, command, check in commands:
        seconds, done = run_python(command, timeout=300)
        problem = f"exit {done.returncode}: {last_line(done.stderr)}" if done.returncode else check()
        rows.append(
            row(
                "paths",
                label,
                seconds,
                "s",
                note="ok" if problem is None else f"FAILED {problem}",
                ok=problem is None,
                command=" ".join(command),
            )
        )
    return rows


def status(run: Path, epochs: int | None = None) -> str | None:
    metrics = run / "metrics.json"
    if not metrics.exists():
        return "no metrics.json"
    record = json.loads(metrics.read_text())
    if record.get("status") != "ok":
        return f"status {record.get('status')}: {record.get('error')}"
    if epochs is not None:
        last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        if last["epoch"] + 1 != epochs:
            return f"last.ckpt is from epoch {last['epoch'] + 1}, expected {epochs}"
    return None


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto (cuda when there is one) | cuda | cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument(
        "--parts", nargs="+", default=["resnet20", "gpt2", "paths"], choices=["resnet20", "gpt2", "paths"]
    )
    parser.add_argument("--compile", default="auto", choices=["auto", "yes", "no"], help="auto: on CUDA only")
    parser.add_argument(
        "--tokenizer", type=Path, default=ASSETS / "gpt2-tokenizer", help="GPT-2 tokenizer folder"
    )
    parser.add_argument("--text", type=Path, default=ASSETS / "wiki.valid.raw", help="WikiText-2 raw lines")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    compile_ = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        parts = {
            "resnet20": lambda: resnet20(device, args.quick, compile_),
            "gpt2": lambda: gpt2(device, args.quick, args.tokenizer, args.text),
            "paths": lambda: paths(device, compile_, Path(work), args.quick),
        }
        for name in args.parts:
            part_started = time.perf_counter()
            try:
                rows.extend(parts[name]())
            except Exception as error:  # noqa: BLE001 - one broken part must not hide the others' numbers
                traceback.print_exc()
                rows.append(
                    row(
                        name, "part failed", 0.0, "", note=f"FAILED {type(error).__name__}: {error}", ok=False
                    )
                )
            print(f"[{name}: {time.perf_counter() - part_started:.0f} s]", flush=True)
    wall = time.perf_counter() - started
    failures = [r for r in rows if r.get("ok") is False]
    table = format_table(rows)
    kind = "gpu" if device.type == "cuda" else "cpu"
    header = f"gpu_check on {machine_info().get('gpu') or 'cpu'} ({device}); {wall:.0f} s; {len(failures)} failures"
    print(header)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}_{kind}.txt").write_text(header + "\n" + table + "\n")
    path = save_results(
        NAME,
        rows,
        args.out / f"{NAME}_{kind}.json",
        quick=args.quick,
        compile=compile_,
        wall_s=wall,
        failures=len(failures),
        data="synthetic uint8 CIFAR-shaped images; "
        "fixture data for the command paths; WikiText-2 validation lines for GPT-2",
    )
    print(f"results: {path} and {args.out / f'{NAME}_{kind}.txt'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
