"""A whole ``resnet20_fast`` epoch: ``train.py`` (the framework, every callback and logger of the experiment) against
a plain PyTorch loop doing the same work, on the same CIFAR-format files.

The same work, with the experiment's values (read from its composed config): ResNet-20, SGD with warm-up + cosine
stepped per batch, label-smoothed cross-entropy, the device loader's crop + flip, an EMA of the weights
(``AveragedModel``, buffers too) updated every step, validation of the EMA net with flip TTA (mean of the logits of each image
and its mirror), a loss scalar to TensorBoard every 50 steps and the epoch's metrics, one checkpoint per epoch;
the experiment's precision and ``channels_last``. The framework is the real command, ``python train.py
experiment=<name>`` (with its checkpoints, progress bar, LR monitor, HParams row, ...) on generated files of
``--train-images`` + ``--val-images``; a callback added on the command line stamps the time at each epoch's start
and at the end of training. Both run 2 epochs and the second is timed (the first builds oneDNN's kernels), in
turn, ``--repeats`` times; the row's ratio is the plain loop's epoch time over the framework's (< 1: the framework
is slower). The framework's time is also split into training and validation and projected to a full epoch of
CIFAR-10 (45k training + 5k validation images) from the per-image costs.

    python benchmarks/bench_epoch.py [--quick] [--experiments resnet20_fast_cpu resnet20_fast]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from common import ROOT, format_table, row, run_python, save_results
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter

from dllabs.data.cifar10 import MEAN, STD, load_split
from dllabs.data.device_loader import DeviceLoader
from dllabs.nets.resnet import ResNet
from dllabs.resolvers import register_resolvers

NAME = "epoch"
FULL_TRAIN, FULL_VAL = 45_000, 5_000  # CIFAR-10's training split and validation split


class EpochTimer(L.Callback):
    """Stamps ``perf_counter`` at each training epoch's start, each validation's start and end, and the end of
    training, into ``out`` (JSON) when training ends. Added to a real run as ``+callbacks.epoch_timer=...``."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.stamps: dict[str, list[float]] = {"epoch_start": [], "val_start": [], "val_end": [], "train_end": []}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.stamps["epoch_start"].append(time.perf_counter())

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.stamps["val_start"].append(time.perf_counter())

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.stamps["val_end"].append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        self.stamps["train_end"].append(time.perf_counter())
        Path(self.out).write_text(json.dumps(self.stamps))


def experiment_settings(name: str) -> dict:
    """What the plain loop copies from ``experiment=<name>``'s composed config (the trainer's precision resolved
    for this CPU, as train.py resolves it)."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={name}", "trainer.accelerator=cpu"])
    optimizer = cfg.optimizer
    return {
        "batch": cfg.data.batch_size, "eval_batch": cfg.data.eval_batch_size, "precision": cfg.trainer.precision,
        "channels_last": bool(cfg.channels_last), "ema_decay": cfg.callbacks.ema.decay,
        "label_smoothing": cfg.model.label_smoothing,
        "sgd": {"lr": optimizer.lr, "momentum": optimizer.momentum, "nesterov": optimizer.nesterov,
                "weight_decay": optimizer.weight_decay},
    }


def framework_epoch(name: str, data: list[str], work: Path) -> dict:
    """Seconds of the second epoch of ``train.py experiment=<name>`` (and its training / validation parts)."""
    stamps_file = work / f"{name}_stamps.json"
    args = [
        "train.py", f"experiment={name}", *data, "trainer.max_epochs=2", "test=false",
        "+callbacks.epoch_timer._target_=bench_epoch.EpochTimer", f"+callbacks.epoch_timer.out={stamps_file}",
        f"hydra.run.dir={work / name / str(time.time_ns())}",
    ]
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))}
    _, done = run_python(args, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"train.py failed: {done.stderr.strip().splitlines()[-1:]}")
    stamps = json.loads(stamps_file.read_text())
    start, end = stamps["epoch_start"][1], stamps["train_end"][0]
    val = stamps["val_end"][-1] - stamps["val_start"][-1]
    return {"epoch_s": end - start, "val_s": val, "train_s": stamps["val_start"][-1] - start}


def plain_epoch(settings: dict, root: Path, val_images: int, work: Path) -> dict:
    """Seconds of the second of two epochs of the plain loop (and its training / validation parts)."""
    device = torch.device("cpu")
    images, labels = load_split(root, train=True, download=False)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    val_idx, train_idx = order[:val_images], order[val_images:]
    channels_last = bool(settings["channels_last"])
    train = DeviceLoader(images[train_idx], labels[train_idx], settings["batch"], True, True, MEAN, STD, device,
                         0, True, channels_last)
    val = DeviceLoader(images[val_idx], labels[val_idx], settings["eval_batch"], False, False, MEAN, STD, device,
                       0, False, channels_last)
    torch.manual_seed(0)
    net = ResNet(depth=20)
    net = net.to(memory_format=torch.channels_last) if channels_last else net
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(settings["ema_decay"]), use_buffers=True)
    optimizer = torch.optim.SGD(net.parameters(), **settings["sgd"])
    total = 2 * len(train)
    warmup = max(1, total // 30)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + torch.cos(torch.tensor((step - warmup) / max(1, total - warmup) * torch.pi)).item())

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    bf16 = str(settings["precision"]).startswith("bf16")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    writer = SummaryWriter(str(work / "plain_tensorboard"))
    step = 0
    times = []
    for epoch in range(2):
        started = time.perf_counter()
        net.train()
        train.sampler.set_epoch(epoch)
        for x, y in train:
            with autocast():
                loss = F.cross_entropy(net(x), y, label_smoothing=settings["label_smoothing"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            ema.update_parameters(net)
            if step % 50 == 0:
                writer.add_scalar("train/loss", loss.item(), step)
            step += 1
        val_started = time.perf_counter()
        ema.eval()
        correct = 0
        with torch.no_grad(), autocast():
            for x, y in val:
                logits = (ema(x) + ema(x.flip(3))) / 2
                correct += int((logits.argmax(1) == y).sum())
        writer.add_scalar("val/acc", correct / val_images, epoch)
        val_s = time.perf_counter() - val_started
        torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict()},
                   work / "plain_last.ckpt")
        times.append({"epoch_s": time.perf_counter() - started, "val_s": val_s, "train_s": val_started - started})
    writer.close()
    return times[1]


def fixture_data(root: Path, train_images: int, val_images: int) -> list[str]:
    """CIFAR-10-format files of ``train_images + val_images`` training images (the data overrides to use them)."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import cifar10

    overrides = cifar10.make(root, per_batch=(train_images + val_images) // 5, test_size=100)
    keep = ("data.data_dir=", "data.download=", "data.num_workers=")
    return [o for o in overrides if o.startswith(keep)] + [f"data.val_size={val_images}"]


def run(quick: bool, experiments: list[str], train_images: int, val_images: int, repeats: int) -> list[dict]:
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # as train.py: every CPU
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_epoch_") as tmp:
        work = Path(tmp)
        data = fixture_data(work / "cifar", train_images, val_images)
        for name in experiments:
            settings = experiment_settings(name)
            if quick:
                settings |= {"batch": 32, "eval_batch": 50}
                data_run = [*data, "data.batch_size=32", "data.eval_batch_size=50"]
            else:
                data_run = data
            framework, plain = [], []
            for _ in range(repeats):  # in turn, so both meet the same moments of a drifting machine
                framework.append(framework_epoch(name, data_run, work))
                plain.append(plain_epoch(settings, work / "cifar", val_images, work))
            what = (f"{train_images:,} + {val_images:,} images, batch {settings['batch']}, {settings['precision']}"
                    f"{', channels_last' if settings['channels_last'] else ''}; 2nd of 2 epochs, median of {repeats}")
            parts = {key: statistics.median(run[key] for run in framework) for key in ("epoch_s", "train_s", "val_s")}
            plain_s = statistics.median(run["epoch_s"] for run in plain)
            plain_label = f"{name} epoch: plain loop (EMA, flip-TTA val, logging, checkpoint)"
            rows.append(row(NAME, plain_label, plain_s, "s", note=what,
                            train_s=statistics.median(run["train_s"] for run in plain),
                            val_s=statistics.median(run["val_s"] for run in plain)))
            rows.append(row(NAME, f"{name} epoch: framework (train.py, every callback)", parts["epoch_s"], "s",
                            baseline=plain_label, note=f"training {parts['train_s']:.2f} s, validation "
                            f"{parts['val_s']:.2f} s", **parts))
            projected = (parts["train_s"] / train_images * FULL_TRAIN + parts["val_s"] / val_images * FULL_VAL) / 60
            rows.append(row(NAME, f"{name}: projected full epoch in the framework", projected, "min",
                            note=f"{FULL_TRAIN:,} training + {FULL_VAL:,} validation images at the per-image costs"
                            " above"))
    for r in rows:
        if r.get("baseline"):
            base = next(b for b in rows if b["measurement"] == r["baseline"])
            r["ratio"] = base["value"] / r["value"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke run)")
    parser.add_argument("--experiments", nargs="+", default=["resnet20_fast_cpu", "resnet20_fast"])
    parser.add_argument("--train-images", type=int, default=None, help="default 5,000 (quick: 160)")
    parser.add_argument("--val-images", type=int, default=None, help="default 500 (quick: 100)")
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    train_images = args.train_images or (160 if args.quick else 5_000)
    val_images = args.val_images or (100 if args.quick else 500)
    repeats = args.repeats or (1 if args.quick else 2)
    rows = run(args.quick, args.experiments, train_images, val_images, repeats)
    print(format_table(rows))
    print(f"results: {save_results(NAME, rows, args.out, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
