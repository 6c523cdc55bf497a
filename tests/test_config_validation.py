"""Every bad config value is one ``error:`` line naming the key, the value and what is allowed, exit status 2,
before any work starts (no run folder); ``HYDRA_FULL_ERROR=1`` still shows the traceback.

The table runs through the same function ``python train.py`` runs (``entry.hydra_main(cli.train, "train")``
with that command line in ``sys.argv``) so that ~50 cases take seconds; a few run as real processes.
"""

import sys

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from dllabs.cli import train
from dllabs.config_schema import validate_config
from dllabs.entry import hydra_main
from tests.conftest import compose_config, run_cli

BAD_VALUES = [
    # top level
    ("seed=abc", "seed=abc: must be null or an integer >= 0 and <= 4294967295"),
    ("monitor_mode=up", "monitor_mode=up: must be one of min, max"),
    ("train=maybe", "train=maybe: must be true or false"),
    ("optimized_metric=null", "optimized_metric=null: must be a string"),
    ("compile=3", "compile=3: must be true or false"),
    ("cpu_precision=bf17", "cpu_precision=bf17: must be one of auto, 64, 32, 16, transformer-engine, ..."),  # Lightning's list
    # data, every data module
    ("data.batch_size=-1", "data.batch_size=-1: must be an integer >= 1"),
    ("data.batch_size=2.5", "data.batch_size=2.5: must be an integer >= 1"),
    ("data.augment=foo", "data.augment=foo: must be one of none, crop_flip"),
    ("data.loader=gpu", "data.loader=gpu: must be one of standard, device"),
    ("data.num_workers=-2", "data.num_workers=-2: must be an integer >= 0"),
    ("data.val_size=0", "data.val_size=0: must be an integer >= 1"),
    ("data.train_subset=0", "data.train_subset=0: must be null or an integer >= 1"),
    ("experiment=lstm_imdb data.split=[0.5,0.5]",
     "data.split=[0.5, 0.5]: must be three fractions in (0, 1) for train, val, test that add up to 1"),
    ("experiment=lstm_imdb data.min_freq=0", "data.min_freq=0: must be an integer >= 1"),
    ("experiment=lstm_imdb data.source=web", "data.source=web: must be one of auto, csv, aclimdb, archive"),
    ("experiment=lms data.add_bias=sometimes", "data.add_bias=sometimes: must be one of auto, true, false"),
    ("experiment=lms data.noise_std=-1", "data.noise_std=-1: must be a number >= 0"),
    ("experiment=gpt2_full data.protocol=chunked", "data.protocol=chunked: must be one of lab, dynamic, packed"),
    ("experiment=gpt2_full data.fraction=0", "data.fraction=0: must be a number > 0 and <= 1"),
    # model (the task) and model.net, every net
    ("model.num_classes=1", "model.num_classes=1: must be an integer >= 2"),
    ("model.label_smoothing=1.5", "model.label_smoothing=1.5: must be a number >= 0 and < 1"),
    ("model.net.activation=tanhx", "model.net.activation=tanhx: must be one of relu, swish"),
    ("model.net.norm=layer", "model.net.norm=layer: must be one of none, batchnorm"),
    ("model=resnet20 model.net.depth=21", "model.net.depth=21: must be 6n+2 with n >= 1 (20, 32, 44, 56, 110)"),
    ("model=resnet20 model.net.shortcut=C", "model.net.shortcut=C: must be one of A, B"),
    ("model=simplenn3 model.net.hidden=0", "model.net.hidden=0: must be an integer >= 1"),
    ("experiment=lstm_imdb model.net.dropout=1.0", "model.net.dropout=1.0: must be a number >= 0 and < 1"),
    ("experiment=lstm_imdb model.net.pooling=sum", "model.net.pooling=sum: must be one of last, max, mean"),
    ("experiment=gpt2_lora model.net.pretrained=/nonexistent",
     ("model.net.pretrained=/nonexistent: must be null or a hub name (e.g. gpt2) or an existing folder written by "
     "save_pretrained")),
    ("experiment=gpt2_full callbacks.text_samples.generation.top_p=2",
     "callbacks.text_samples.generation.top_p=2: must be null or a number > 0 and <= 1"),
    ("experiment=gpt2_full model.net.dtype=float8",
     "model.net.dtype=float8: must be null or one of float32, float64, float16, bfloat16, auto"),
    ("experiment=lstm_imdb model.net.init=xavier", "model.net.init=xavier: must be one of default, template"),
    ("experiment=lms model.mse=rms", "model.mse=rms: must be one of mean, half_mean"),
    ("experiment=lms model.net.in_features=0", "model.net.in_features=0: must be an integer >= 1"),
    # optimizer
    ("optimizer.lr=abc", "optimizer.lr=abc: must be a number > 0"),
    ("optimizer.lr=0", "optimizer.lr=0: must be a number > 0"),
    ("optimizer.momentum=-0.5", "optimizer.momentum=-0.5: must be a number >= 0 and < 1"),
    ("optimizer=adam optimizer.betas=[0.9,1.5]", "optimizer.betas=[0.9, 1.5]: every item must be >= 0 and < 1"),
    ("+optimizer.foo=1", "optimizer.foo=1: torch.optim.SGD takes no argument 'foo' (it takes dampening, ..."),
    ("+optimizer.momentun=0.5",
     "optimizer.momentun=0.5: torch.optim.SGD takes no argument 'momentun' (did you mean momentum?) (it takes ..."),
    # scheduler
    ("scheduler=step scheduler.gamma=0", "scheduler.gamma=0: must be a number > 0"),
    ("scheduler=multistep scheduler.milestones=[5]", "scheduler.milestones=[5]: every item must be > 0 and < 1"),
    ("scheduler=cosine scheduler.min_factor=2", "scheduler.min_factor=2: must be a number >= 0 and <= 1"),
    ("scheduler.warmup_steps=-1", "scheduler.warmup_steps=-1: must be an integer >= 0"),
    ("scheduler=onecycle scheduler.pct_start=1", "scheduler.pct_start=1: must be a number > 0 and < 1"),
    # regularizer
    ("regularizer.strength=-1", "regularizer.strength=-1: must be a number >= 0"),
    ("regularizer=l1 regularizer.strength=abc", "regularizer.strength=abc: must be a number >= 0"),
    # trainer
    ("trainer.max_epochs=-5",  # Lightning's own check, run by a dry build of the Trainer
     "trainer.max_epochs=-5: `max_epochs` must be a non-negative integer or -1. You passed in -5"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: must be an integer >= 1"),
    ("trainer.limit_train_batches=-1",
     ("trainer.limit_train_batches=-1: You have passed invalid value -1 for limit_train_batches, it has to be in "
      "[0.0, 1.0] or an int")),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1: must be a number >= 0"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0: must be an integer >= 1"),
    # callbacks (keys checked against the target's signature)
    ("+callbacks.lr_monitor.foo=1",
     "callbacks.lr_monitor.foo=1: lightning.pytorch.callbacks.LearningRateMonitor takes no argument 'foo' ..."),
]


def _train_py(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """``python train.py ARGS`` in this process: (exit status, stderr)."""
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stopped:
        hydra_main(train, "train")
    return stopped.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=[case[0] for case in BAD_VALUES])
def test_bad_value_is_one_line_and_exit_2(overrides, message, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    code, err = _train_py([*overrides.split(), f"hydra.run.dir={run_dir}"], monkeypatch, capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1
    if message.endswith("..."):  # the rest lists the target's arguments, which depend on the torch/Lightning version
        assert lines[0].startswith(f"error: {message[:-3]}")
    else:
        assert lines[0] == f"error: {message}"
    assert not run_dir.exists()  # checked before Hydra makes the run folder


def test_error_raised_inside_a_constructor_is_one_line(tmp_path, monkeypatch, capsys):
    """A check only the object can make (weights vs inputs) arrives wrapped by Hydra; it still prints one line."""
    code, err = _train_py(
        ["experiment=lms", "model.net.initial_weights=[1,2]", f"hydra.run.dir={tmp_path}/run"], monkeypatch, capsys
    )
    assert code == 2
    assert err.splitlines() == [
        ("error: model.net.initial_weights has 2 values but the filter has 3 inputs; give 3 values (bias weight "
        "first) or set model.net.in_features to match")
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=resnet20"],
        ["experiment=lms"],
        ["experiment=lstm_imdb_strong"],
        ["experiment=gpt2_lora"],
        ["experiment=simplenn_robust", "scheduler=onecycle", "regularizer=l1"],
    ],
)
def test_good_configs_pass_unchanged(overrides, tmp_path):
    cfg = compose_config(overrides, tmp_path)
    before = OmegaConf.to_yaml(cfg)
    validate_config(cfg)
    assert OmegaConf.to_yaml(cfg) == before


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ("optimizer.lr=abc", "error: optimizer.lr=abc: must be a number > 0"),
        ("data.batch_size=-1", "error: data.batch_size=-1: must be an integer >= 1"),
        ("experiment=gpt2_lora model.net.pretrained=/nonexistent",
         ("error: model.net.pretrained=/nonexistent: must be null or a hub name (e.g. gpt2) or an existing folder "
         "written by save_pretrained")),
    ],
)
def test_real_command_line(overrides, line, tmp_path):
    result = run_cli(["train.py", *overrides.split(), f"hydra.run.dir={tmp_path}/run"], timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line]
    assert not (tmp_path / "run").exists()


def test_full_error_shows_the_traceback(tmp_path):
    result = run_cli(
        ["train.py", "data.augment=foo", f"hydra.run.dir={tmp_path}/run"], env={"HYDRA_FULL_ERROR": "1"}, timeout=120
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "ConfigError: data.augment=foo: must be one of none, crop_flip" in result.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], "error: run_dir has no value (???): give run_dir=<value>"),
        (["run_dir=.", "split=train"], "error: split=train: must be one of test, val"),
    ],
)
def test_eval_config_is_checked_too(args, line, tmp_path, monkeypatch, capsys):
    from dllabs.evaluate import evaluate

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["eval.py", *args, f"hydra.run.dir={tmp_path}/run"])
    with pytest.raises(SystemExit) as stopped:
        hydra_main(evaluate, "eval")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [line]
    assert not (tmp_path / "run").exists()
