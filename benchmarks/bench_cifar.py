"""CIFAR-10 speed: the standard DataLoader path vs the device-resident loader, and training throughput of
ResNet-20 / SimpleNN in the framework (Lightning Trainer + ClassificationTask) vs a plain PyTorch loop.

Both training measurements run in the same process on the same batches (the device loader's), the same net,
optimiser (SGD lr 0.1, momentum 0.9, weight decay 1e-4) and precision; warm-up steps are not timed. The two take
turns step by step within one run (``interleaved``: on a shared 2-core VM the same SimpleNN step drifts by +-10%
from one moment to the next, more than the difference measured), ``--repeats`` times; the framework/plain ratio
is the median of the runs' ratios, the images/s the median of each. A third contestant, a bare LightningModule
(the same net, cross-entropy and optimiser, nothing logged, no metrics), takes turns with the plain loop the same
way: its ratio is Lightning's own cost, the floor under the framework's. Goals: framework >= 0.97x the plain
loop; device path >= 3x the standard path on CPU. Data are synthetic uint8 images in the CIFAR layout (speed does
not depend on pixel values), so no dataset is needed.

    python benchmarks/bench_cifar.py                          # CPU here: about 1-2 minutes on 2 cores
    python benchmarks/bench_cifar.py --steps 100 --loader-batches 200 --precision bf16-mixed --channels-last

Results: a table on stdout and benchmarks/results/bench_cifar_<device>.json with the machine description.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from dllabs.analysis.layer_table import layer_table
from dllabs.data.cifar10 import MEAN, STD
from dllabs.data.device_loader import DeviceLoader, resolve_device
from dllabs.data.image_dataset import ImageTensorDataset
from dllabs.data.transforms import cifar_train_transform
from dllabs.hardware import cpu_model, cpu_peak, training_flops_per_image
from dllabs.tasks.classification import ClassificationTask

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_cifar(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, 10, (count,), generator=generator)


def machine(device: torch.device, threads: int) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


# ----------------------------------------------------------------------------------------------- loaders
def time_batches(loader, batches: int, warmup: int, device: torch.device, batch_size: int) -> float:
    """Images/s of ``loader`` after ``warmup`` batches, each batch delivered on ``device``."""
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(batches):
        x, y = next(iterator)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    synchronize(device)
    return batches * batch_size / (time.perf_counter() - started)


def bench_loaders(args, device: torch.device) -> dict:
    count = (args.loader_batches + args.loader_warmup + 1) * args.batch_size
    images, labels = synthetic_cifar(count)
    dataset = ImageTensorDataset(images, labels, cifar_train_transform("crop_flip", MEAN, STD))
    standard = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    fast = DeviceLoader(
        images, labels, args.batch_size, True, True, MEAN, STD, device, 0, True, args.channels_last
    )
    results = {"standard": [], "device": []}
    for _ in range(args.repeats):
        results["standard"].append(
            time_batches(standard, args.loader_batches, args.loader_warmup, device, args.batch_size)
        )
        results["device"].append(
            time_batches(fast, args.loader_batches, args.loader_warmup, device, args.batch_size)
        )
    return {
        "standard_images_per_s": statistics.median(results["standard"]),
        "device_images_per_s": statistics.median(results["device"]),
        "standard_runs": results["standard"],
        "device_runs": results["device"],
        "standard_workers": args.workers,
    }


# ----------------------------------------------------------------------------------------------- training
def make_net(name: str, channels_last: bool, compile: bool = False) -> torch.nn.Module:
    if name == "resnet20":
        from dllabs.nets.resnet import ResNet

        net = ResNet(depth=20)
    else:
        from dllabs.nets.simplenn import SimpleNN

        net = SimpleNN(norm="batchnorm", activation="swish")
    net = net.to(memory_format=torch.channels_last) if channels_last else net
    if compile:
        net.compile()  # in place, as train.py compile=true does
    return net


optimizer_factory = partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-4)


def autocast(precision: str, device: torch.device):
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed":
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


def plain_step_function(name: str, args, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One training step of the shortest correct PyTorch loop, on its own seeded net and optimiser."""
    torch.manual_seed(0)
    net = make_net(name, args.channels_last, getattr(args, "compile", False)).to(device).train()
    optimizer = optimizer_factory(net.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "16-mixed")

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(args.precision, device):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def plain_loop(name: str, loader: DeviceLoader, args, device: torch.device) -> float:
    """Images/s of the shortest correct PyTorch training loop on the same batches."""
    step = plain_step_function(name, args, device)
    total = args.warmup + args.steps
    started = None
    for index, (x, y) in enumerate(loader):
        if index == args.warmup:
            synchronize(device)
            started = time.perf_counter()
        if index == total:
            break
        step(x, y)
    synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - started)


class BareLightningModule(L.LightningModule):
    """Lightning's floor: the plain loop's step as a LightningModule (automatic optimisation), nothing else."""

    def __init__(self, net: nn.Module, num_classes: int, optimizer) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())


def framework(
    name: str, loader: DeviceLoader, args, device: torch.device, module=ClassificationTask
) -> float:
    """Images/s of the same training through Lightning's Trainer and ``module`` (the project's ClassificationTask,
    or ``BareLightningModule`` for Lightning's floor)."""

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.started = self.finished = 0.0

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if batch_idx + 1 == args.warmup:
                synchronize(device)
                self.started = time.perf_counter()
            elif batch_idx + 1 == args.warmup + args.steps:
                synchronize(device)
                self.finished = time.perf_counter()

    timer = StepTimer()
    fit_framework(name, loader, args, device, timer, module)
    return args.steps * args.batch_size / (timer.finished - timer.started)


def fit_framework(
    name: str, loader: DeviceLoader, args, device: torch.device, callback, module=ClassificationTask
) -> None:
    """Train ``warmup + steps`` steps with Lightning's Trainer and ``module`` (ClassificationTask, or the floor),
    ``callback`` timing them."""
    torch.manual_seed(0)
    net = make_net(name, args.channels_last, getattr(args, "compile", False))
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(module(net, 10, optimizer=optimizer_factory), train_dataloaders=loader)


def interleaved(
    name: str, loader: DeviceLoader, args, device: torch.device, module=ClassificationTask
) -> tuple[float, float]:
    """Images/s of the framework (``module`` in Lightning's Trainer) and of the plain loop, measured in turn step
    by step in one training run.

    After each framework step (``on_train_batch_end``) one plain-loop step runs on its own net, optimiser and
    iterator over the same loader. The framework's time is everything between the end of one plain step and the
    end of the next framework step (its loop, hooks, batch fetch, logging and the step itself), the plain loop's
    the rest. Measured separately, each ran a few seconds at a different moment, and on a shared 2-core VM the
    same step's time drifts by +-10% from one moment to the next; here both see the same moments.
    """
    step = plain_step_function(name, args, device)
    plain_batches = iter(loader)

    def plain_step() -> None:
        step(*next(plain_batches))

    class TakeTurns(L.Callback):
        def __init__(self) -> None:
            self.framework = self.plain = 0.0
            self.last: float | None = None

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            synchronize(device)
            now = time.perf_counter()
            timed = batch_idx >= args.warmup
            if timed:
                self.framework += now - self.last
            plain_step()
            synchronize(device)
            self.last = time.perf_counter()
            if timed:
                self.plain += self.last - now

    turns = TakeTurns()
    fit_framework(name, loader, args, device, turns, module)
    images = args.steps * args.batch_size
    return images / turns.framework, images / turns.plain


DEFAULT_STEPS = {
    ("cpu", "resnet20"): 8,
    ("cpu", "simplenn"): 60,
    ("cuda", "resnet20"): 100,
    ("cuda", "simplenn"): 300,
}


def bench_training(name: str, args, device: torch.device) -> dict:
    args = argparse.Namespace(**{**vars(args), "steps": args.steps or DEFAULT_STEPS[device.type, name]})
    images, labels = synthetic_cifar((args.warmup + args.steps + 1) * args.batch_size, seed=1)
    loader = DeviceLoader(
        images, labels, args.batch_size, True, True, MEAN, STD, device, 0, True, args.channels_last
    )
    runs: dict[str, list[float]] = {"framework": [], "plain": [], "floor": [], "floor_plain": []}
    for _ in range(args.repeats):
        framework_rate, plain_rate = interleaved(name, loader, args, device)
        runs["framework"].append(framework_rate)
        runs["plain"].append(plain_rate)
        if args.floor:
            floor_rate, plain_rate = interleaved(name, loader, args, device, BareLightningModule)
            runs["floor"].append(floor_rate)
            runs["floor_plain"].append(plain_rate)
    pair_ratios = [framework / plain for framework, plain in zip(runs["framework"], runs["plain"])]
    result = {
        "framework_images_per_s": statistics.median(runs["framework"]),
        "plain_images_per_s": statistics.median(runs["plain"]),
        "framework_over_plain": statistics.median(pair_ratios),
        "pair_ratios": pair_ratios,
        "framework_runs": runs["framework"],
        "plain_runs": runs["plain"],
        "timed_steps": args.steps,
    }
    if args.floor:
        floor_ratios = [floor / plain for floor, plain in zip(runs["floor"], runs["floor_plain"])]
        result |= {
            "floor_images_per_s": statistics.median(runs["floor"]),
            "floor_over_plain": statistics.median(floor_ratios),
            "floor_pair_ratios": floor_ratios,
            "floor_runs": runs["floor"],
            "floor_plain_runs": runs["floor_plain"],
        }
    return result


# ----------------------------------------------------------------------------------------------- precision
# (label, precision, channels_last, compile): each a plain-loop training step, against fp32 in the same run
VARIANTS = (
    ("fp32", "32-true", False, False),
    ("fp32 + channels_last", "32-true", True, False),
    ("bf16-mixed", "bf16-mixed", False, False),
    ("bf16-mixed + channels_last", "bf16-mixed", True, False),
    ("bf16-mixed + channels_last + compile", "bf16-mixed", True, True),
)
VARIANT_BATCH = {"resnet20": 256, "simplenn": 128}  # the labs' batch sizes (resnet20_fast(_cpu), simplenn_*)
VARIANT_STEPS = {("cpu", "resnet20"): 2, ("cpu", "simplenn"): 20, ("cuda", "resnet20"): 30, ("cuda", "simplenn"): 100}


def forward_macs(name: str) -> int:
    """Multiply-accumulates of one image's forward pass: the layer table's total (dllabs.analysis)."""
    return layer_table(make_net(name, False).eval(), torch.zeros(1, 3, 32, 32)).total_macs


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def of_peak(images_per_s: float, flops_per_image: int, peak_flops: float) -> float:
    """Achieved training FLOP/s (images/s x FLOPs per image) as a fraction of ``peak_flops``."""
    return images_per_s * flops_per_image / peak_flops


def bench_variants(name: str, args, device: torch.device, variants=VARIANTS) -> dict:
    """Plain-loop training images/s of ``name`` in each variant (precision, channels_last, compile), taking turns.

    Each variant has its own seeded net and optimiser and runs ``--variant-warmup`` untimed steps first (compile
    happens there: its time is reported apart). Then ``--variant-rounds`` rounds each run ``--variant-steps``
    timed steps of every variant in turn, so all variants meet the same moments of a machine whose speed drifts.
    Values are medians over rounds; ``paired_ratio`` is the median over rounds of a variant's rate over fp32's.
    """
    batch = args.variant_batch or VARIANT_BATCH[name]
    args = argparse.Namespace(**{**vars(args), "variant_steps": args.variant_steps or VARIANT_STEPS[device.type, name]})
    count = args.variant_steps + 1
    images, labels = synthetic_cifar(count * batch, seed=2)
    batches = {
        layout: list(DeviceLoader(images, labels, batch, True, True, MEAN, STD, device, 0, True, layout))
        for layout in (False, True)
    }
    steps, compile_s = {}, {}
    # compile with an empty inductor cache, as a user's first run does (a warm cache from an earlier run of this
    # benchmark would make compiling look almost free)
    with tempfile.TemporaryDirectory(prefix="inductor_cache_") as cache, _environment(TORCHINDUCTOR_CACHE_DIR=cache):
        for label, precision, channels_last, compile_ in variants:
            settings = argparse.Namespace(precision=precision, channels_last=channels_last, compile=compile_)
            steps[label] = plain_step_function(name, settings, device)
            started = time.perf_counter()
            for index in range(args.variant_warmup):
                steps[label](*batches[channels_last][index % len(batches[channels_last])])
            synchronize(device)
            compile_s[label] = time.perf_counter() - started
    rates: dict[str, list[float]] = {label: [] for label, *_ in variants}
    for _ in range(args.variant_rounds):
        for label, _precision, channels_last, _compile in variants:
            synchronize(device)
            started = time.perf_counter()
            for index in range(args.variant_steps):
                steps[label](*batches[channels_last][index])
            synchronize(device)
            rates[label].append(args.variant_steps * batch / (time.perf_counter() - started))
    baseline = variants[0][0]
    flops = training_flops_per_image(forward_macs(name))
    peak = cpu_peak(cores=torch.get_num_threads()) if device.type == "cpu" else None
    result = {"batch": batch, "threads": torch.get_num_threads(), "training_flops_per_image": flops, "variants": {}}
    for label, precision, channels_last, compile_ in variants:
        value = statistics.median(rates[label])
        entry = {
            "precision": precision, "channels_last": channels_last, "compile": compile_,
            "images_per_s": value, "runs": rates[label],
            "paired_ratio": statistics.median(r / b for r, b in zip(rates[label], rates[baseline])),
            "warmup_s": compile_s[label], "achieved_flops": value * flops,
        }
        if peak is not None:
            kind = "bf16" if precision.startswith("bf16") else "fp32"
            entry |= {"peak_kind": kind, "peak_flops": getattr(peak, kind),
                      "of_peak": of_peak(value, flops, getattr(peak, kind))}
        result["variants"][label] = entry
    if peak is not None:
        result["peak"] = {"fp32_flops": peak.fp32, "bf16_flops": peak.bf16,
                          "fp32": peak.derivation("fp32"), "bf16": peak.derivation("bf16")}
    return result


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--loader-batches", type=int, default=30, help="timed batches per loader")
    parser.add_argument("--loader-warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the standard path")
    parser.add_argument(
        "--models", nargs="+", default=["resnet20", "simplenn"], choices=["resnet20", "simplenn"]
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed training steps (default per model: CPU 8 / 60, GPU 100 / 300)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps first (default: 2 CPU, 20 GPU)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs taking turns (framework, plain); the medians are reported"
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the bare LightningModule runs (Lightning's own cost against the plain loop)",
    )
    parser.add_argument(
        "--no-variants", dest="variants", action="store_false",
        help="skip the precision rows (plain loop fp32 vs bf16-mixed, channels_last, compile; %% of peak)",
    )
    parser.add_argument("--variant-steps", type=int, default=None,
                        help="timed steps per variant per round (default CPU 2 resnet20 / 20 simplenn)")
    parser.add_argument("--variant-rounds", type=int, default=3, help="rounds of the variants taking turns")
    parser.add_argument("--variant-warmup", type=int, default=2, help="untimed steps per variant (compile is here)")
    parser.add_argument("--variant-batch", type=int, default=None, help="default: the lab's (256 / 128)")
    parser.add_argument("--variant-threads", type=int, default=None,
                        help="torch threads of the precision rows (default: every CPU, as a training run uses)")
    parser.add_argument("--no-compile", dest="compile_variant", action="store_false",
                        help="leave out the compile variant (its warm-up compiles: ~40 s for ResNet-20 on 2 cores)")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed", "16-mixed"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default 1 on CPU: the standard path's workers get cores of their own)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/...)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    args.warmup = args.warmup or (20 if on_gpu else 2)
    threads = args.threads or (torch.get_num_threads() if on_gpu else 1)
    torch.set_num_threads(threads)
    if on_gpu:
        torch.backends.cudnn.benchmark = True

    started = time.perf_counter()
    loaders = bench_loaders(args, device)
    training = {name: bench_training(name, args, device) for name in args.models}
    variants = {}
    if args.variants:
        torch.set_num_threads(args.variant_threads or (threads if on_gpu else len(os.sched_getaffinity(0))))
        chosen = VARIANTS if args.compile_variant else tuple(v for v in VARIANTS if not v[3])
        variants = {name: bench_variants(name, args, device, chosen) for name in args.models}
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started

    loader_ratio = loaders["device_images_per_s"] / loaders["standard_images_per_s"]
    described = machine(device, threads)

    def row(name: str, images_per_s: float, ratio: float) -> str:
        return f"{name:<46} {images_per_s:>10.1f} {ratio:>6.2f}x"

    where = described.get("gpu", described["cpu"])
    title = (
        f"CIFAR-10 speed on {device} ({where}), batch {args.batch_size}, {args.precision}, {threads} threads"
    )
    lines = [
        title,
        f"{'measurement':<46} {'images/s':>10} {'ratio':>7}",
        row(f"data: standard DataLoader ({args.workers} workers)", loaders["standard_images_per_s"], 1.0),
        row("data: device loader (batched crop+flip)", loaders["device_images_per_s"], loader_ratio),
    ]
    for name, result in training.items():
        ratio = result["framework_over_plain"]
        lines.append(row(f"train {name}: plain PyTorch loop", result["plain_images_per_s"], 1.0))
        lines.append(
            row(f"train {name}: Lightning + ClassificationTask", result["framework_images_per_s"], ratio)
        )
        if "floor_over_plain" in result:
            lines.append(
                row(f"train {name}: bare LightningModule (floor)", result["floor_images_per_s"],
                    result["floor_over_plain"])
            )
    for name, result in variants.items():
        lines.append(f"train {name}, plain loop, batch {result['batch']}, {result['threads']} threads: "
                     f"{result['training_flops_per_image'] / 1e6:.1f} MFLOP per training image")
        for label, entry in result["variants"].items():
            share = f"  {entry['of_peak']:6.1%} of {entry['peak_kind']} peak" if "of_peak" in entry else ""
            lines.append(row(f"  {label}", entry["images_per_s"], entry["paired_ratio"])
                         + f"  {entry['achieved_flops'] / 1e9:7.1f} GFLOP/s{share}")
        if "peak" in result:
            lines.append(f"  peak fp32 {result['peak']['fp32_flops'] / 1e9:,.0f} GFLOP/s = {result['peak']['fp32']}; "
                         f"peak bf16 {result['peak']['bf16_flops'] / 1e9:,.0f} GFLOP/s = {result['peak']['bf16']}")
    lines.append(
        f"ratios: median of {args.repeats} runs, each taking turns step by step with the plain loop. goals: device"
        f" loader >= 3x standard on CPU; framework >= 0.97x plain.  ({wall:.0f} s)"
    )
    print("\n".join(lines))

    record = {
        "benchmark": "bench_cifar",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": described,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "loaders": {**loaders, "device_over_standard": loader_ratio},
        "training": training,
        "variants": variants,
        "wall_time_s": wall,
        "table": lines,
    }
    out = args.out or RESULTS / f"bench_cifar_{'gpu' if on_gpu else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
