"""LMS lab: data formats, Wiener reference, the per-sample update, divergence, the CLI run and the sweep."""

from __future__ import annotations

import functools
import json
import math

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.io import savemat

from dllabs import schedules
from dllabs.analysis.lms import mse, stability_bounds, wiener_solution
from dllabs.callbacks.divergence import DivergenceGuard
from dllabs.callbacks.lms import LMSReport
from dllabs.data.lms import LMSDataModule, generate_lms_data
from dllabs.errors import ConfigError, CorruptDataError, DatasetNotFoundError, TrainingDiverged
from dllabs.nets.linear import LinearFilter
from dllabs.reporting.lms import write_report
from dllabs.signature_check import check_arguments
from dllabs.tasks.regression import RegressionTask
from tests.conftest import compose_config, run_cli, run_train
from tests.fixtures import lms as lms_fixture

START = [0.53, 0.20, 0.10]


def numpy_lms(features, targets, weights, lr, epochs):
    """The lab's rule written out: w <- w + r e x for every sample, in order."""
    weights = np.array(weights, dtype=np.float64)
    for _ in range(epochs):
        for x, d in zip(features, targets):
            weights = weights + lr * (d - x @ weights) * x
    return weights


def make_task(lr, scheduler=None, mse_convention="mean"):
    optimizer = functools.partial(torch.optim.SGD, lr=lr)
    return RegressionTask(LinearFilter(3, START), optimizer, scheduler=scheduler, mse=mse_convention)


def make_trainer(tmp_path, epochs, report):
    """The guard before the report, so a divergence stops the epoch before the report sees it."""
    return L.Trainer(
        max_epochs=epochs,
        default_root_dir=tmp_path,
        logger=False,
        callbacks=[DivergenceGuard(), report],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def fit(tmp_path, lr, epochs, datamodule=None, scheduler=None, mse_convention="mean"):
    datamodule = datamodule or LMSDataModule(num_samples=100, seed=0)
    task, report = make_task(lr, scheduler, mse_convention), LMSReport()
    trainer = make_trainer(tmp_path, epochs, report)
    trainer.fit(task, datamodule)
    return report, trainer, datamodule


def test_wiener_weights_equal_lstsq():
    features, targets = generate_lms_data(100, [1.0, 1.0, -2.0], 0.01, seed=5)
    solution = wiener_solution(features, targets)
    expected, *_ = np.linalg.lstsq(features, targets, rcond=None)
    np.testing.assert_allclose(solution.weights, expected, rtol=0, atol=1e-12)
    assert solution.mse == pytest.approx(np.mean((targets - features @ expected) ** 2), rel=1e-12)
    assert wiener_solution(features, targets, "half_mean").mse == pytest.approx(solution.mse / 2)
    np.testing.assert_allclose(solution.weights, [1, 1, -2], atol=0.01)


def test_singular_inputs_are_a_clear_error():
    features = np.column_stack([np.ones(10), np.ones(10), np.arange(10.0)])
    with pytest.raises(ConfigError, match="singular"):
        wiener_solution(features, np.arange(10.0))


def test_stability_bounds_from_the_autocorrelation():
    features = np.diag([2.0, 1.0, 1.0])  # R = X^T X / 3 = diag(4/3, 1/3, 1/3)
    bounds = stability_bounds(np.vstack([features, features]))
    assert bounds.lambda_max == pytest.approx(4 / 3)
    assert bounds.mean_bound == pytest.approx(1.5)
    assert bounds.mean_square_bound == pytest.approx(1.0)


def test_three_formats_load_the_same_data(tmp_path):
    files = lms_fixture.write_all(tmp_path)
    expected, expected_targets = generate_lms_data(lms_fixture.NUM_SAMPLES, [1.0, 1.0, -2.0], 0.01, 3)
    for suffix, path in files.items():
        datamodule = LMSDataModule(data_dir=str(tmp_path), path=str(path.relative_to(tmp_path)))
        datamodule.setup("fit")
        np.testing.assert_array_equal(datamodule.features, expected, err_msg=suffix)
        np.testing.assert_array_equal(datamodule.targets, expected_targets, err_msg=suffix)
        inputs, _ = next(iter(datamodule.train_dataloader()))
        assert inputs.shape == (lms_fixture.NUM_SAMPLES, 3), "one batch must hold the whole dataset"


def test_file_without_bias_column_gets_one(tmp_path):
    path = tmp_path / "plain.csv"
    pd.DataFrame({"x1": [0.5, -1.0, 2.0], "x2": [1.0, 0.0, 3.0], "d": [1.0, 2.0, 3.0]}).to_csv(
        path, index=False
    )
    datamodule = LMSDataModule(path=str(path))
    datamodule.setup()
    np.testing.assert_array_equal(datamodule.features[:, 0], [1.0, 1.0, 1.0])
    assert datamodule.num_features == 3


@pytest.mark.parametrize(
    ("name", "write", "error", "message"),
    [
        (
            "keys.npz",
            lambda p: np.savez(p, inputs=np.ones((5, 3)), D=np.ones(5)),
            CorruptDataError,
            "lacks variable",
        ),
        (
            "shape.mat",
            lambda p: savemat(p, {"X": np.ones((5, 3)), "D": np.ones((4, 1))}),
            CorruptDataError,
            "targets",
        ),
        (
            "flat.npz",
            lambda p: np.savez(p, X=np.ones(5), D=np.ones(5)),
            CorruptDataError,
            r"expected \(N, k\)",
        ),
        ("nan.npz", lambda p: np.savez(p, X=np.full((5, 3), np.nan), D=np.ones(5)), CorruptDataError, "NaN"),
        ("nocol.csv", lambda p: p.write_text("a,b,y\n1,2,3\n4,5,6\n"), CorruptDataError, "target column"),
        ("junk.mat", lambda p: p.write_bytes(b"not a mat file at all" * 10), CorruptDataError, "MATLAB"),
        ("data.txt", lambda p: p.write_text("1,2,3\n"), ConfigError, "unsupported file type"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, name, write, error, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(error, match=message):
        LMSDataModule(path=str(path)).setup()


def test_missing_file_names_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data.path"):
        LMSDataModule(data_dir=str(tmp_path), path="nowhere.csv").setup()


def test_validation_split_and_shuffle():
    datamodule = LMSDataModule(num_samples=30, seed=1, val_size=10, shuffle=True)
    datamodule.setup()
    train_inputs, _ = next(iter(datamodule.train_dataloader()))
    val_inputs, _ = next(iter(datamodule.val_dataloader()))
    assert train_inputs.shape[0] == 20 and val_inputs.shape[0] == 10
    rows = {tuple(row.tolist()) for row in torch.cat([train_inputs, val_inputs])}
    assert len(rows) == 30
    loader = datamodule.train_dataloader()
    first = next(iter(loader))[0]
    loader.sampler.set_epoch(1)
    second = next(iter(loader))[0]
    assert not torch.equal(first, second) and sorted(first[:, 1].tolist()) == sorted(second[:, 1].tolist())
    with pytest.raises(ConfigError, match="val_size"):
        LMSDataModule(num_samples=10, val_size=9).setup()


def test_one_update_per_sample_is_the_lms_rule(tmp_path):
    report, trainer, datamodule = fit(tmp_path, lr=0.02, epochs=2)
    expected = numpy_lms(datamodule.features, datamodule.targets, START, 0.02, 2)
    np.testing.assert_allclose(trainer.lightning_module.net.weight_vector.double().numpy(), expected, atol=1e-5)
    assert trainer.global_step == 200, "one optimizer step per sample"
    assert len(report.mse_history) == 2
    assert report.mse_history[-1] == pytest.approx(
        mse(datamodule.features, datamodule.targets, expected), rel=1e-4
    )


def test_small_rate_converges_to_wiener(tmp_path):
    report, _, _ = fit(tmp_path, lr=0.01, epochs=30)
    results = report.run_results()
    assert results["distance_to_wiener"] < 1e-3
    assert results["final_mse"] == pytest.approx(results["wiener_mse"], rel=0.02)
    assert results["mse_history"][-1] < results["mse_history"][0] < results["initial_mse"]
    assert results["mse_convention"] == "mean" and "mean" in results["mse_definition"]
    assert (tmp_path / "lms_mse.png").stat().st_size > 0 and (tmp_path / "lms_planes.png").stat().st_size > 0
    json.dumps(results, allow_nan=False)


def test_rate_above_the_bound_diverges_and_says_so(tmp_path):
    datamodule = LMSDataModule(num_samples=100, seed=0)
    datamodule.setup()
    lr = 1.1 * stability_bounds(datamodule.features).mean_bound
    report = LMSReport()
    with pytest.raises(TrainingDiverged):
        make_trainer(tmp_path, 20, report).fit(make_task(lr), datamodule)
    results = report.run_results()
    assert results["mse_history"][-1] in ("inf", "nan")
    assert results["final_mse"] in ("inf", "nan") and len(results["mse_history"]) < 20
    assert results["lr"] > results["stability_bound"]
    assert (tmp_path / "lms_mse.png").exists(), "the curve of a diverged run is drawn too"
    assert (tmp_path / "lms_planes.png").stat().st_size > 0, "and its planes figure"
    json.dumps(results, allow_nan=False)


@pytest.mark.parametrize("blown_up", [[np.nan, np.nan, np.nan], [np.inf, -np.inf, 1.0], [3e30, -1e29, 2e30]])
def test_planes_of_a_diverged_run_keep_the_data_readable(blown_up):
    """NaN, infinite or huge LMS weights do not stretch the axes: the data and the Wiener plane fill the figure,
    and the legend says the LMS plane is off the chart."""
    from dllabs.analysis.lms_figures import plot_planes

    datamodule = LMSDataModule(num_samples=100, seed=0)
    datamodule.setup()
    features, targets = datamodule.features, datamodule.targets
    wiener = np.linalg.lstsq(features, targets, rcond=None)[0].ravel()
    figure = plot_planes(features, targets, wiener, np.array(blown_up))
    axes = figure.axes[0]
    low, high = axes.get_zlim()
    spread = targets.max() - targets.min()
    assert targets.min() - spread <= low <= targets.min() and targets.max() <= high <= targets.max() + spread
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert any(label.startswith("LMS") and "off the chart" in label for label in labels), labels
    assert any(label.startswith("Wiener") and "off the chart" not in label for label in labels), labels


def test_half_mean_convention_halves_every_mse(tmp_path):
    mean_report, _, _ = fit(tmp_path / "mean", lr=0.05, epochs=2)
    half_report, _, _ = fit(tmp_path / "half", lr=0.05, epochs=2, mse_convention="half_mean")
    np.testing.assert_allclose(half_report.mse_history, np.array(mean_report.mse_history) / 2, rtol=1e-6)
    assert half_report.run_results()["wiener_mse"] == pytest.approx(mean_report.run_results()["wiener_mse"] / 2)
    assert half_report.run_results()["initial_mse"] == pytest.approx(mean_report.run_results()["initial_mse"] / 2)
    with pytest.raises(ConfigError, match="model.mse=sum: must be one of mean, half_mean"):
        check_arguments({"mse": "sum"}, "dllabs.tasks.regression.RegressionTask", "model")


def test_schedule_counts_one_step_per_sample(tmp_path):
    scheduler = functools.partial(schedules.step, step_epochs=1, gamma=0.5)
    _, trainer, _ = fit(tmp_path, lr=0.01, epochs=2, scheduler=scheduler)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.25)


def test_resume_continues_the_history_and_the_weights(tmp_path):
    straight, _, _ = fit(tmp_path / "straight", lr=0.02, epochs=4)
    trainer = make_trainer(tmp_path / "first", 2, LMSReport())
    trainer.fit(make_task(0.02), LMSDataModule(num_samples=100, seed=0))
    checkpoint = tmp_path / "two.ckpt"
    trainer.save_checkpoint(checkpoint)
    resumed = LMSReport()
    make_trainer(tmp_path / "resumed", 4, resumed).fit(
        make_task(0.02), LMSDataModule(num_samples=100, seed=0), ckpt_path=checkpoint
    )
    np.testing.assert_allclose(resumed.mse_history, straight.mse_history, rtol=1e-5)
    assert resumed.run_results()["initial_mse"] == pytest.approx(straight.run_results()["initial_mse"])


def test_initial_weights_must_fit_the_inputs():
    with pytest.raises(ConfigError, match="initial_weights"):
        LinearFilter(3, [0.1, 0.2])


def test_train_cli_writes_results_figures_and_loadable_checkpoints(tmp_path):
    overrides = lms_fixture.make(tmp_path / "data")
    metric, _ = run_train(["experiment=lms", *overrides, "optimizer.lr=0.05"], tmp_path / "run")
    run = tmp_path / "run"
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and record["optimized_metric"] == "val/mse"
    results = record["results"]
    assert results["num_samples"] == lms_fixture.NUM_SAMPLES and len(results["mse_history"]) == 20
    assert metric == pytest.approx(results["final_mse"], rel=1e-5)
    assert results["initial_weights"] == pytest.approx(START)
    assert {"wiener_weights", "distance_to_wiener", "stability_bound", "mse_convention"} <= results.keys()
    assert (run / "lms_mse.png").exists() and (run / "lms_planes.png").exists()
    assert [p.name.split(",")[0] for p in (run / "tensorboard").iterdir()] == ["lms"]  # single run: experiment,time
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 20_000, "figures logged to TensorBoard"
    torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def test_the_lms_model_brings_its_report_to_any_callbacks_option(tmp_path):
    plain = compose_config(["experiment=lms"], tmp_path / "plain")
    swapped = compose_config(["experiment=lms", "callbacks=histograms"], tmp_path / "swapped")
    dropped = compose_config(["experiment=lms", "callbacks.lms_report=null"], tmp_path / "dropped")
    assert plain.callbacks.lms_report._target_ == "dllabs.callbacks.lms.LMSReport"
    assert {"lms_report", "histograms", "divergence_guard"} <= swapped.callbacks.keys()
    assert dropped.callbacks.lms_report is None and "divergence_guard" in dropped.callbacks
    assert "lms_report" not in compose_config(["experiment=resnet20"], tmp_path / "other").callbacks


@pytest.mark.slow
def test_sweep_records_r1_as_diverged_and_reports(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "train.py",
            "-m",
            "experiment=lms",
            "sweep=lms_rates",
            f"hydra.sweep.dir={sweep_dir}",
            "callbacks.progress_bar=null",
            "trainer.enable_model_summary=false",
        ],
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((sweep_dir / str(job) / "metrics.json").read_text()) for job in range(6)]
    statuses = {record["results"]["lr"]: record["status"] for record in records}
    assert statuses == {0.005: "ok", 0.01: "ok", 0.05: "ok", 0.1: "ok", 0.5: "ok", 1.0: "diverged"}
    report = run_cli(["scripts/lms_report.py", str(sweep_dir)])
    assert report.returncode == 0, report.stderr
    assert "diverged" in report.stdout and "2/lambda_max(R)" in report.stdout
    assert (sweep_dir / "lms_sweep.png").exists()
    table = pd.read_csv(sweep_dir / "lms_sweep.csv")
    assert list(table["r"]) == [0.005, 0.01, 0.05, 0.1, 0.5, 1.0]
    assert math.isinf(table["final_mse"].iloc[-1]) and (table["final_mse"].iloc[:-1] < 1e-3).all()


def test_report_of_a_folder_without_runs_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no LMS runs"):
        write_report(tmp_path)


@pytest.mark.realdata
def test_lab_dataset_reproduces_the_reference(shared_data, tmp_path):
    path = shared_data / "lms" / "dataset.csv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    datamodule = LMSDataModule(path=str(path))
    datamodule.setup()
    solution = wiener_solution(datamodule.features, datamodule.targets)
    np.testing.assert_allclose(solution.weights, [1.00068, 1.00061, -2.00032], atol=1e-5)
    assert solution.mse == pytest.approx(1.008e-4, rel=1e-3)
    report, _, _ = fit(tmp_path, lr=0.005, epochs=20, datamodule=datamodule)
    results = report.run_results()
    assert results["distance_to_wiener"] < 1e-4
    assert results["final_mse"] == pytest.approx(solution.mse, rel=1e-3)
