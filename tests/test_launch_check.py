"""A bad value, a typo'd key, a missing option or a bad sweep member stops ``python train.py`` with one ``error:``
line naming the key, the value and what is allowed, exit status 2, before any folder exists (issues 24 and 25).

Each case runs as a user types it: a real ``python train.py ...`` process, its run (or sweep) folder under tmp_path.
"""

from __future__ import annotations

import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from dllabs.errors import ConfigError
from dllabs.launch_check import _jobs, check_command_line
from tests.conftest import CONF_DIR, QUIET, run_cli

# (command line, the start of the one error line after "error: ")
REFUSED = [
    # Lightning's own choices: from the Trainer's signature (precision) or a dry build of it (accelerator, devices)
    ("trainer.precision=weird",
     ("trainer.precision=weird: must be null or one of 64, 32, 16, transformer-engine, transformer-engine-float16, "
     "16-true, 16-mixed, bf16-true, bf16-mixed, 32-true, 64-true, bf16")),
    ("trainer.accelerator=tpu", "trainer.accelerator=tpu: "),
    ("trainer.devices=0", "trainer.devices=0: `Trainer(devices=0)` value is not a valid input"),
    # numbers that are not numbers
    ("optimizer.lr=nan", "optimizer.lr=nan: must be a finite number"),
    ("optimizer.lr=inf", "optimizer.lr=inf: must be a finite number"),
    ("optimizer.lr=1e400", "optimizer.lr=1e400: must be a finite number (1e400 is beyond a float's range)"),
    ("scheduler=cosine scheduler.min_factor=-inf", "scheduler.min_factor=-inf: must be a finite number"),
    ("data.batch_size=99999999999999999999",
     "data.batch_size=99999999999999999999: too large; an integer here must be at most 9,223,372,036,854,775,807"),
    # a range torch does not declare, written once for the optimizer group (conf/limits.yaml)
    ("optimizer.momentum=1.5", "optimizer.momentum=1.5: must be a number >= 0 and < 1"),
    ("experiment=gpt2_lora finetune.r=0", "finetune.r=0: must be an integer >= 1"),
    # whole-config checks
    ("trainer.max_epochs=0", "trainer.max_epochs=0: a training run needs at least 1"),
    ("optimized_metric=val/foo",
     "optimized_metric=val/foo: not a metric this run logs (did you mean val/loss?); one of train/acc,"),
    ("experiment=lms optimized_metric=val/acc", "optimized_metric=val/acc: not a metric this run logs"),
    # choices declared on our own constructors
    ("data.augment=bogus", "data.augment=bogus: must be one of none, crop_flip"),
    ("model.net.activation=bogus", "model.net.activation=bogus: must be one of relu, swish"),
    ("experiment=gpt2_full +data.splits.dev=test", "data.splits.dev=test: no such setting"),
    # Hydra's own errors
    ("optimzer.lr=0.1", "optimzer.lr=0.1: no such key (did you mean optimizer.lr?)"),
    ("regularizer=l3", "regularizer=l3: no such option; choose one of l1, l2, l2_simplenn_cifar10, l2_simplenn_robust, none"),
    ("experiment=nonexistent", "experiment=nonexistent: no such option; choose one of gpt2_full, gpt2_lora, lms,"),
    ("optimizer.lr=0.1,0.2", "optimizer.lr=0.1,0.2: a sweep needs -m (--multirun)"),
    # keys nothing reads
    ("+optimzer.lr=0.1", "optimzer.lr=0.1: no such key, nothing reads it (did you mean optimizer.lr?)"),
    ("+foo=bar", "foo=bar: no such key, nothing reads it"),
    ("+callbacks.extra=1", "callbacks.extra=1: an entry of callbacks is an object to build"),
]


@pytest.mark.parametrize(("args", "line"), REFUSED, ids=[case[0] for case in REFUSED])
def test_refused_in_one_line_before_the_run_folder(args, line, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["train.py", *args.split(), f"hydra.run.dir={run_dir}"], timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    [printed] = result.stderr.splitlines()
    assert printed.startswith(f"error: {line}")
    assert not run_dir.exists()


def test_accelerator_lists_what_this_machine_has(tmp_path):
    result = run_cli(["train.py", "trainer.accelerator=tpu", f"hydra.run.dir={tmp_path}/run"], timeout=300)
    assert result.returncode == 2
    assert "accelerators available here: auto, cpu" in result.stderr or "cuda" in result.stderr


def test_a_sweep_is_checked_whole_before_its_first_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["train.py", "-m", "experiment=lms", "optimizer.lr=0.01,-1", f"hydra.sweep.dir={sweep}"],
                     timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: optimizer.lr=-1: must be a number > 0 (sweep job 1 of 2: optimizer.lr=-1)"
    ]
    assert not sweep.exists()  # the good first job did not run either


def test_verbose_shows_the_traceback_and_still_stops_before_the_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["train.py", "--verbose", "optimizer.lr=nan", f"hydra.run.dir={run_dir}"], timeout=300)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ConfigError: optimizer.lr=nan: must be a finite number" in result.stderr
    assert not run_dir.exists()


@pytest.fixture
def conf_dir():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def test_sweep_members_are_the_basic_sweepers_own(conf_dir):
    """The members checked are the ones Hydra will run: a sweep preset's params and the command line's lists."""
    assert _jobs("train", ["experiment=lms", "optimizer.lr=0.01,0.02"], multirun=True) == [
        ["experiment=lms", "optimizer.lr=0.01"], ["experiment=lms", "optimizer.lr=0.02"]
    ]
    jobs = _jobs("train", ["experiment=simplenn_cifar10", "sweep=simplenn_lr"], multirun=True)
    assert [job[0] for job in jobs] == [f"optimizer.lr={lr}" for lr in (0.1, 0.05, 0.01, 0.005, 0.001)]


def test_good_command_lines_pass(tmp_path):
    for args in ([], ["experiment=lms"], ["-m", "experiment=lms", "optimizer.lr=0.01,0.05"],
                 ["experiment=gpt2_lora", "+finetune.use_rslora=true"], ["trainer=ddp_spawn"]):
        check_command_line("train", [*args, f"hydra.run.dir={tmp_path}/run"])
    # a SLURM sweep is checked on the login node: the GPU its jobs ask for is not there, and not refused
    check_command_line("train", ["-m", "hydra/launcher=slurm", "trainer=gpu", "optimizer.lr=0.1,0.2"])
    # eval's run_dir must be a run folder made by train.py (input_files.check_input_files): a tiny real one
    trained = tmp_path / "trained"
    result = run_cli(["train.py", "experiment=lms", *QUIET, "trainer.max_epochs=1", "logger=csv",
                      f"hydra.run.dir={trained}"], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for command, args in (("analyze", []), ("eval", [f"run_dir={trained}"]), ("generate", ["model.pretrained=gpt2"])):
        check_command_line(command, args)  # other commands' configs (analyze names its folder from ${hydra:...})
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"is not a dllabs run folder: .*config\.yaml is missing"):
        check_command_line("eval", [f"run_dir={tmp_path}"])  # a folder, but no run in it
    with pytest.raises(ConfigError, match=r"^optimizer\.lr=-1: must be a number > 0 \(sweep job 1 of 2"):
        check_command_line("train", ["-m", "experiment=lms", "optimizer.lr=0.01,-1"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU may take trainer=gpu")
def test_a_gpu_run_on_a_machine_without_one_is_refused_before_it_starts():
    with pytest.raises(ConfigError, match=r"^trainer\.accelerator=gpu: .*; accelerators available here: auto, cpu"):
        check_command_line("train", ["trainer=gpu"])
