"""Issue 18: every group option works on top of every experiment.

The cross product of every experiment with every option of the optimizer, scheduler and regularizer groups and
with every model option: each pairing the model can take is composed, its task, optimiser and schedule are built,
and one optimiser step runs on a tiny synthetic batch; each pairing it cannot take is refused before the run with
one ConfigError line naming both options. Experiments and options are found by listing conf/, so a new one is
covered without editing this file (a new data option needs a synthetic batch in BATCHES).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dllabs.errors import ConfigError
from dllabs.pairings import check_pairing
from dllabs.runs import instantiate_task
from tests.conftest import CONF_DIR

SWAPPED = ("optimizer", "scheduler", "regularizer")
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
OPTIONS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in (*SWAPPED, "model")}

# Tiny synthetic batches in each data module's layout (no files are read).
BATCHES = {
    "cifar10": lambda: (torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))),
    "imdb": lambda: (torch.randint(1, 60, (4, 9)), torch.tensor([9, 6, 3, 1]), torch.tensor([0, 1, 1, 0])),
    "lms": lambda: (torch.cat([torch.ones(8, 1), torch.randn(8, 2)], 1), torch.randn(8)),
    "wikitext": lambda: {"input_ids": (ids := torch.randint(0, 300, (2, 12))), "attention_mask": torch.ones_like(ids),
                         "labels": ids.clone()},
}

# Pairings that make no sense and the one line each must stop with (the examples).
MUST_REFUSE = {
    ("lstm_imdb", "simplenn"): "model=simplenn does not fit data=imdb: model=simplenn takes images (data=cifar10)",
    ("resnet20", "lstm"): "model=lstm does not fit data=cifar10: model=lstm takes token sequences (data=imdb)",
    ("simplenn_cifar10", "gpt2"): "model=gpt2 does not fit data=cifar10: model=gpt2 takes text (data=wikitext)",
    ("lms", "gpt2"): "model=gpt2 does not fit data=lms: model=gpt2 takes text (data=wikitext)",
    ("gpt2_full", "resnet20"): "model=resnet20 does not fit data=wikitext: model=resnet20 takes images (data=cifar10)",
    ("simplenn_robust", "lms"): "model=lms does not fit data=cifar10: model=lms takes regression samples (data=lms)",
}


@pytest.fixture(scope="module")
def gpt2_overrides(tmp_path_factory) -> list[str]:
    """GPT-2 experiments load a tiny random GPT-2 saved offline (tests/fixtures/wikitext.py)."""
    from tests.fixtures import wikitext

    return wikitext.make(tmp_path_factory.mktemp("gpt2"))


class Composer:
    """Composes `experiment=X <overrides>` in-process, as `python train.py` would."""

    def __enter__(self):
        GlobalHydra.instance().clear()
        self._ctx = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        GlobalHydra.instance().clear()

    def __call__(self, overrides: list[str]):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        return cfg, dict(cfg.hydra.runtime.choices)


def one_step(task, batch) -> None:
    """Build the optimiser and schedule as the task's factories say, and take one optimiser step on ``batch``."""
    params = list(task.trainable_parameters())
    optimizer = task.optimizer_factory(params)
    schedule = task.scheduler_factory(optimizer, total_steps=20, steps_per_epoch=10) if task.scheduler_factory else None
    before = [p.detach().clone() for p in params]
    # A task that steps its own optimiser (LMS) asks Lightning for it: hand it the same objects.
    task.optimizers = lambda use_pl_optimizer=True: optimizer
    task.lr_schedulers = lambda: schedule
    task.manual_backward = lambda loss, *args, **kwargs: loss.backward()
    task.train()
    lr = optimizer.param_groups[0]["lr"]
    loss = task.training_step(batch, 0)
    if task.automatic_optimization:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
    assert math.isfinite(float(loss.detach()))
    if lr > 0:  # a schedule that starts with a warm-up from 0 legitimately leaves the weights as they were
        assert any(not torch.equal(a, p.detach()) for a, p in zip(before, params)), "the step changed no weight"


def cases(experiment: str) -> list[tuple[str, str, str]]:
    return [(experiment, g, o) for g in (*SWAPPED, "model") for o in OPTIONS[g]]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log()`")
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_cross_product_of_experiments_and_group_options(experiment, gpt2_overrides, capsys):
    """One experiment x every option of optimizer, scheduler, regularizer and model (one test per experiment, so
    the experiments spread over test workers; a new experiment or option is picked up from conf/)."""
    counts: Counter[str] = Counter()
    refused: list[str] = []
    tasks: dict[str, object] = {}
    own_keys: dict[tuple[str, str], set[str]] = {}
    bases: dict[str, tuple] = {}
    with Composer() as composed:
        for _, group, option in cases(experiment):
            if experiment not in bases:
                bases[experiment] = composed([f"experiment={experiment}"])
            base_cfg, base_choices = bases[experiment]
            extra = gpt2_overrides if base_choices["data"] == "wikitext" else []
            where = f"experiment={experiment} {group}={option}"
            if group == "model":
                try:
                    check_pairing(CONF_DIR, {**base_choices, "model": option})
                except ConfigError as err:
                    message = str(err)
                    assert f"model={option}" in message and f"data={base_choices['data']}" in message, message
                    assert "\n" not in message
                    refused.append(f"{where}: {message}")
                    counts["refused"] += 1
                    continue
                cfg, choices = composed([f"experiment={experiment}", f"model={option}", *extra])
                task = instantiate_task(cfg)
            else:
                cfg, choices = composed([f"experiment={experiment}", f"{group}={option}", *extra])
                check_pairing(CONF_DIR, choices)
                task = tasks.get(experiment)
                if task is None:
                    task = tasks[experiment] = instantiate_task(cfg)
                # the experiment's task with this case's optimiser, scheduler and regulariser factories
                parts = {n: instantiate(cfg[n]) if cfg.get(n) else None for n in SWAPPED}
                task.optimizer_factory, task.scheduler_factory, task.regularizer = (
                    parts["optimizer"], parts["scheduler"], parts["regularizer"]
                )
                assert OmegaConf.to_container(cfg.model) == OmegaConf.to_container(base_cfg.model) or extra
            # the option picked replaced the whole node: only its own keys are there
            if group != "model" and cfg.get(group):
                if (group, option) not in own_keys:
                    own_keys[group, option] = set(composed([f"{group}={option}"])[0][group])
                assert set(cfg[group]) == own_keys[group, option], where
            try:
                one_step(task, BATCHES[choices["data"]]())
            except Exception as err:  # name the failing case in the assertion
                raise AssertionError(f"{where}: {type(err).__name__}: {err}") from err
            counts[group] += 1
    with capsys.disabled():
        total = sum(counts.values())
        print(f"\ncross product of {experiment}: {total} cases, {total - counts['refused']} trained one step "
              f"({', '.join(f'{g} {counts[g]}' for g in (*SWAPPED, 'model'))}), {counts['refused']} refused")
    assert all(counts[g] > 0 for g in SWAPPED) and counts["model"] + counts["refused"] == len(OPTIONS["model"])


def test_some_model_swaps_are_refused():
    refusals = [(e, m) for e in EXPERIMENTS for m in OPTIONS["model"] if (e, m) in MUST_REFUSE]
    assert refusals, "the cross product must include pairings that are refused on purpose"


@pytest.mark.parametrize(("experiment", "model"), sorted(MUST_REFUSE), ids=[f"{e}+{m}" for e, m in sorted(MUST_REFUSE)])
def test_nonsense_pairings_are_refused_with_one_line(experiment, model):
    with Composer() as composed:
        _, choices = composed([f"experiment={experiment}", f"model={model}"])
    with pytest.raises(ConfigError) as err:
        check_pairing(CONF_DIR, choices)
    assert str(err.value).startswith(MUST_REFUSE[(experiment, model)])
