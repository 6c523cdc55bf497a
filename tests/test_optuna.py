"""Optuna search (sweep=optuna_*): failed and diverged trials do not stop the study, the best is reported, resume works."""

from __future__ import annotations

import csv
import json
import math

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.dllabs_optuna_sweeper.optuna_sweeper import _DivergedAsFailed
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

    import optuna

    storage = f"sqlite:///{tmp_path}/simplenn_cifar10/optuna/studies.db"
    optuna.load_study(study_name=STUDY, storage=storage).ask()  # a trial left RUNNING, as by a killed sweep

    second = run_cli(
        ["train.py", "-m", *quick, *search, "optimizer.lr=0.01", "hydra.sweeper.n_trials=5"]
    )
    assert second.returncode == 0, second.stderr[-3000:]
    trials = _trials(sweep_dir)
    assert sorted(trials) == [0, 1, 2, 3, 4]
    assert trials[3]["state"] == "FAIL"  # the stale RUNNING trial
    assert trials[4]["state"] == "COMPLETE"  # only the one missing trial ran, in run folder 4
    assert json.loads((sweep_dir / "4" / "metrics.json").read_text())["status"] == "ok"
    assert not (sweep_dir / "5").exists()


def test_diverged_job_comes_back_as_a_failed_job():
    class FakeLauncher:
        def launch(self, job_overrides, initial_job_idx):
            return [
                JobReturn(overrides=["optimizer.lr=1"], status=JobStatus.COMPLETED, _return_value=float("nan")),
                JobReturn(overrides=["optimizer.lr=0.1"], status=JobStatus.COMPLETED, _return_value=0.7),
            ]

    diverged, fine = _DivergedAsFailed(FakeLauncher()).launch([["a"], ["b"]], initial_job_idx=0)
    assert diverged.status == JobStatus.FAILED
    # Hydra's plugin discovery may re-import the sweeper module, so compare the class by name, not identity
    with pytest.raises(Exception, match="diverged") as raised:
        _ = diverged.return_value
    assert type(raised.value).__name__ == "TrialDiverged"
    assert fine.status == JobStatus.COMPLETED and fine.return_value == 0.7


@pytest.mark.parametrize(("mode", "direction"), [("max", "maximize"), ("min", "minimize")])
def test_search_direction_follows_monitor_mode(tmp_path, mode, direction):
    cfg = compose_config(["sweep=optuna_resnet20", "experiment=resnet20", f"monitor_mode={mode}"], tmp_path)
    assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper.max_failure_rate == 1.0
    assert cfg.hydra.sweeper.storage.startswith("sqlite:///")


def test_optuna_figures_of_a_tiny_study_are_real_images(tmp_path):

    import optuna
    from PIL import Image

    from hydra_plugins.dllabs_optuna_sweeper.optuna_sweeper import write_figures

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -(t.suggest_float("lr", 1e-3, 1.0, log=True) - 0.1) ** 2 + t.suggest_int("width", 1, 4), 6)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # a failed trial must not break the figures

    written = write_figures(study, tmp_path)
    expected = {"optimization_history", "param_importances", "parallel_coordinate", "slice"}
    assert {p.stem.removeprefix("optuna_") for p in written} == expected
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
            colours = image.convert("L").getextrema()
        assert colours[0] < colours[1], f"{path.name} is blank"
