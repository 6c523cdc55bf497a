"""Optuna search (sweep=optuna_*): the search space, pruners, presets; failed and diverged trials do not stop the
study, the best is reported, a study is extended. Workers, pruning runs, kills: tests/test_optuna_workers.py."""

from __future__ import annotations

import csv
import json
import math

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from dllabs.search.space import SearchSpace
from dllabs.search.study import make_pruner
from dllabs.search.summary import write_figures
from tests.conftest import QUIET, compose_config, run_cli

STUDY = "simplenn_cifar10_simplenn"


def _trials(folder) -> dict[int, dict[str, str]]:
    with open(folder / "trials.csv") as handle:
        return {int(row["number"]): row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_search_with_a_diverged_and_a_crashed_trial_completes_and_resumes(cifar_fixture, tmp_path):
    quick = [*cifar_fixture, *QUIET, "data.train_subset=64", "trainer.max_epochs=2", f"paths.log_dir={tmp_path}"]
    search = ["sweep=optuna_simplenn", "hydra.sweeper.params=null"]
    first = run_cli(
        ["train.py", "-m", *quick, *search, "hydra/sweeper/sampler=grid", "optimizer.lr=choice(0.01,1e6,-1.0)"]
    )
    assert first.returncode == 0, first.stderr[-3000:]
    sweep_dir = tmp_path / "simplenn_cifar10" / "optuna" / STUDY
    assert (tmp_path / "simplenn_cifar10" / "optuna" / "studies.db").is_file()

    trials = _trials(sweep_dir)
    assert len(trials) == 3
    by_lr = {float(row["params_optimizer.lr"]): (number, row) for number, row in trials.items()}
    expected = {0.01: ("COMPLETE", "ok"), 1e6: ("FAIL", "diverged"), -1.0: ("FAIL", "failed")}
    for lr, (state, status) in expected.items():
        number, row = by_lr[lr]
        assert row["state"] == state, (lr, row)
        run = json.loads((sweep_dir / str(number) / "metrics.json").read_text())
        assert run["status"] == status, (lr, run.get("error"))
    best_number, best_row = by_lr[0.01]

    for figure in ("optimization_history", "parallel_coordinate", "slice"):  # written with trials.csv
        assert (sweep_dir / f"optuna_{figure}.png").stat().st_size > 5_000
    assert "optimizer.lr=0.01" in [p.name for p in (sweep_dir / str(by_lr[0.01][0]) / "tensorboard").iterdir()]

    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_params == {"optimizer.lr": 0.01}
    assert results.best_trial == best_number
    assert math.isclose(results.best_value, float(best_row["value"]))
    assert results.trials.complete == 1 and results.trials.fail == 2
    assert json.loads((sweep_dir / str(best_number) / "metrics.json").read_text())["best_score"] == results.best_value

    changed = run_cli(  # another search space on the same study: refused before anything is written
        ["train.py", "-m", *quick, *search, "optimizer.lr=choice(0.01,0.1)", "hydra.sweeper.n_trials=5"]
    )
    assert changed.returncode == 2, changed.stderr[-3000:]
    error = [line for line in changed.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "another search space" in error[0], changed.stderr[-2000:]
    assert "optimizer.lr was choice(0.01, 1000000.0, -1.0), now choice(0.01, 0.1)" in error[0], error[0]
    assert sorted(_trials(sweep_dir)) == [0, 1, 2] and not (sweep_dir / "3").exists()

    second = run_cli(  # the same space, another sampler: the study is extended by the missing trials, folders 3, 4
        ["train.py", "-m", *quick, *search, "optimizer.lr=choice(0.01,1e6,-1.0)", "hydra.sweeper.n_trials=5"]
    )
    assert second.returncode == 0, second.stderr[-3000:]
    trials = _trials(sweep_dir)
    assert sorted(trials) == [0, 1, 2, 3, 4]
    for number in (3, 4):
        state, status = expected[float(trials[number]["params_optimizer.lr"])]
        assert trials[number]["state"] == state, trials[number]
        assert json.loads((sweep_dir / str(number) / "metrics.json").read_text())["status"] == status
    assert not (sweep_dir / "5").exists()


def test_search_space_reads_hydra_sweep_syntax():
    space = SearchSpace.from_overrides([
        "optimizer.lr=tag(log, interval(0.001, 0.5))", "regularizer=choice(l1, l2)", "model.width=range(16, 80, 16)",
        "optimizer.momentum=interval(0.8, 0.95)", "trainer.max_epochs=60", "scheduler=constant,cosine",
        "optimizer.momentum=0.9",  # a later (command-line) override of a key replaces the preset's
    ])
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(0.001, 0.5, log=True),
        "regularizer": CategoricalDistribution(["l1", "l2"]),
        "model.width": IntDistribution(16, 64, step=16),  # range excludes its end, as Hydra's basic sweeper
        "scheduler": CategoricalDistribution(["constant", "cosine"]),
    }
    assert space.fixed == {"trainer.max_epochs": "60", "optimizer.momentum": "0.9"}
    assert space.overrides({"regularizer": "l1"}) == ["regularizer=l1", "trainer.max_epochs=60", "optimizer.momentum=0.9"]
    grid = SearchSpace.from_overrides(["model.width=range(16, 80, 16)", "regularizer=l1,l2"]).grid()
    assert grid == {"model.width": [16, 32, 48, 64], "regularizer": ["l1", "l2"]}
    with pytest.raises(ValueError, match="grid sampler"):
        space.grid()


def test_pruner_by_name_or_by_config():
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
    hyperband = make_pruner({"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 2, "reduction_factor": 2})
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner) and hyperband._min_resource == 2
    with pytest.raises(ValueError, match="median"):
        make_pruner("medain")
    # hyperband's max_resource: auto is the trials' epochs (the callback reports epochs trained, 1..max_epochs)
    assert make_pruner("hyperband", max_epochs=8)._max_resource == 8
    assert make_pruner({"_target_": "optuna.pruners.HyperbandPruner", "max_resource": 5}, 8)._max_resource == 5


@pytest.mark.parametrize("pruner", ["median", "percentile", "hyperband", "successive_halving", "none"])
def test_every_pruner_option_composes_and_builds(tmp_path, pruner):
    cfg = compose_config(["sweep=optuna_simplenn", f"hydra/sweeper/pruner={pruner}"], tmp_path)
    assert isinstance(make_pruner(cfg.hydra.sweeper.pruner, cfg.trainer.max_epochs), optuna.pruners.BasePruner)
    by_name = compose_config(["sweep=optuna_simplenn", f"hydra.sweeper.pruner={pruner}"], tmp_path)
    assert type(make_pruner(by_name.hydra.sweeper.pruner)) is type(make_pruner(cfg.hydra.sweeper.pruner))


@pytest.mark.slow
def test_the_resnet20_preset_runs_a_trial(cifar_fixture, tmp_path):
    result = run_cli([
        "train.py", "-m", "experiment=resnet20", "sweep=optuna_resnet20", *cifar_fixture, *QUIET,
        "data.train_subset=64", "trainer.max_epochs=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "hydra.sweeper.n_trials=1", f"paths.log_dir={tmp_path}", "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    results = OmegaConf.load(tmp_path / "resnet20" / "optuna" / "resnet20_resnet20" / "optimization_results.yaml")
    assert results.trials.complete == 1
    assert set(results.best_params) == {"optimizer.lr", "optimizer.weight_decay", "optimizer.momentum"}


@pytest.mark.parametrize(("mode", "direction"), [("max", "maximize"), ("min", "minimize")])
def test_search_direction_follows_monitor_mode(tmp_path, mode, direction):
    cfg = compose_config(["sweep=optuna_resnet20", "experiment=resnet20", f"monitor_mode={mode}"], tmp_path)
    assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper.storage.startswith("sqlite:///")


def test_optuna_figures_of_a_tiny_study_are_real_images(tmp_path):
    from PIL import Image

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    def objective(trial):
        value = -(trial.suggest_float("lr", 1e-3, 1.0, log=True) - 0.1) ** 2 + trial.suggest_int("width", 1, 4)
        trial.report(value / 2, step=0)
        return value

    study.optimize(objective, 6)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # a failed trial must not break the figures

    written = write_figures(study, tmp_path)
    expected = {"optimization_history", "param_importances", "parallel_coordinate", "slice", "intermediate_values"}
    assert {p.stem.removeprefix("optuna_") for p in written} == expected
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
            colours = image.convert("L").getextrema()
        assert colours[0] < colours[1], f"{path.name} is blank"


@pytest.mark.parametrize("storage", ["sqlite:///{}/new/folder/studies.db", "{}/new/folder/studies.log"])
def test_ask_lock_on_a_storage_whose_folder_does_not_exist_yet(tmp_path, storage):
    """A preset's storage (outputs/<task>/optuna/studies.db) need not exist when hydra.sweep.dir is elsewhere."""
    from dllabs.search.study import ask_lock, open_storage

    url = storage.format(tmp_path)
    with ask_lock(url):
        open_storage(url)
    assert (tmp_path / "new" / "folder").is_dir()


def test_a_study_from_before_the_recorded_space_is_checked_by_its_trials(tmp_path):
    """A study made before the space was stored (no user attribute) is compared with its first trial's space."""
    from dllabs.errors import ConfigError
    from dllabs.search.space import SPACE_ATTR, check_same_space, remember_space

    storage = f"sqlite:///{tmp_path}/old.db"
    study = optuna.create_study(study_name="old", storage=storage)
    same = SearchSpace.from_overrides(["optimizer.lr=tag(log, interval(1e-4, 0.1))", "trainer.max_epochs=3"])
    check_same_space(study, SearchSpace.from_overrides(["optimizer.lr=range(1, 5)"]), storage)  # no trial: any
    trial = study.ask(same.distributions)
    study.tell(trial, 0.5)
    check_same_space(study, SearchSpace.from_overrides(["optimizer.lr=tag(log, interval(1e-4, 0.1))"]), storage)
    with pytest.raises(ConfigError, match=r"optimizer.lr was tag\(log, interval\(0.0001, 0.1\)\), now interval\(1, 4\)"):
        check_same_space(study, SearchSpace.from_overrides(["optimizer.lr=range(1, 5)"]), storage)
    with pytest.raises(ConfigError, match="optimizer.momentum was not searched, now interval"):
        check_same_space(study, SearchSpace.from_overrides([*same_lr(), "optimizer.momentum=interval(0.8, 0.9)"]),
                         storage)
    remember_space(study, same)
    assert study.user_attrs[SPACE_ATTR] == {"optimizer.lr": optuna.distributions.distribution_to_json(
        same.distributions["optimizer.lr"])}


def same_lr() -> list[str]:
    return ["optimizer.lr=tag(log, interval(1e-4, 0.1))"]
