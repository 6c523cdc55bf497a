"""predict.py on a trained fixture run: CSV layout and order for every CIFAR input kind, reports, clear errors."""

import csv
import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict
from torchvision.io import write_png

from dllabs.errors import CheckpointMismatchError, ConfigError, CorruptDataError, DatasetNotFoundError
from dllabs.predicting import output_path
from tests.conftest import ROOT, compose_config, run_cli, run_train
from tests.test_console import messages

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def trained_run(cifar_fixture, tmp_path_factory) -> Path:
    """A ResNet-8 run on the fixture (device loader, 2 epochs), saved with its config as train.py saves it."""
    run_dir = tmp_path_factory.mktemp("resnet_run")
    overrides = ["experiment=resnet20", *cifar_fixture, "model.net.depth=8", "optimizer.lr=0.05"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a conv net on a shared 2-core machine is many times faster on one thread
    try:
        _, cfg = run_train([*overrides, "trainer.max_epochs=2", "logger=csv"], run_dir)
    finally:
        torch.set_num_threads(threads)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    with open_dict(cfg):
        hydra_cfg = cfg.pop("hydra")
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), run_dir / ".hydra" / "hydra.yaml")
    return run_dir


@pytest.fixture(scope="module")
def test_batch(cifar_fixture) -> Path:
    data_dir = next(o.split("=", 1)[1] for o in cifar_fixture if o.startswith("data.data_dir="))
    return Path(data_dir) / "cifar-10-batches-py" / "test_batch"


def batch_images(path: Path) -> tuple[np.ndarray, list[int]]:
    with open(path, "rb") as handle:
        entry = pickle.load(handle, encoding="latin1")
    return entry["data"].reshape(-1, 3, 32, 32), entry["labels"]


def predict(run_dir: Path, out: Path, **keys) -> tuple[dict, list[dict]]:
    from dllabs.predicting import predict as run_predict

    overrides = [f"run_dir={run_dir}", "accelerator=cpu", f"output={out / 'predictions.csv'}"]
    overrides += [f"{k}={v}" for k, v in keys.items()]
    cfg = compose_config(overrides, out, config_name="predict")
    summary = run_predict(cfg)
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return summary, rows


def test_batch_file_gives_one_row_per_image_and_an_accuracy_report(trained_run, test_batch, tmp_path, capsys):
    summary, rows = predict(trained_run, tmp_path, input=test_batch)
    assert list(rows[0]) == ["Id", "Label"]
    assert [int(r["Id"]) for r in rows] == list(range(100))
    assert all(0 <= int(r["Label"]) < 10 for r in rows)
    _, labels = batch_images(test_batch)
    predicted = [int(r["Label"]) for r in rows]
    assert summary["accuracy"] == pytest.approx(np.mean(np.array(predicted) == np.array(labels)))
    assert sum(row["support"] for row in summary["per_class"]) == 100
    assert (tmp_path / "predictions_confusion_matrix.png").stat().st_size > 0
    assert json.loads((tmp_path / "predictions_summary.json").read_text())["count"] == 100
    printed = capsys.readouterr().out
    assert "accuracy on the 100 labelled inputs" in printed and "airplane" in printed


def test_npy_and_image_folder_keep_input_order(trained_run, test_batch, tmp_path):
    _, from_batch = predict(trained_run, tmp_path / "batch", input=test_batch)
    reference = [int(r["Label"]) for r in from_batch]
    images, _ = batch_images(test_batch)
    order = np.random.default_rng(0).permutation(len(images))

    npy = tmp_path / "images.npy"
    np.save(npy, images[order].transpose(0, 2, 3, 1))
    summary, rows = predict(trained_run, tmp_path / "npy", input=npy)
    assert list(rows[0]) == ["Id", "Label"] and len(rows) == 100
    assert [int(r["Label"]) for r in rows] == [reference[i] for i in order]
    assert "accuracy" not in summary

    folder = tmp_path / "pngs"
    folder.mkdir()
    names = {}
    for rank, index in enumerate(order[:30]):
        name = f"img_{rank:03d}.png"
        write_png(torch.from_numpy(images[index].copy()), str(folder / name))
        names[name] = index
    _, rows = predict(trained_run, tmp_path / "folder", input=folder)
    assert list(rows[0]) == ["Id", "Label", "File"]
    assert [r["File"] for r in rows] == sorted(names)
    assert [int(r["Label"]) for r in rows] == [reference[names[r["File"]]] for r in rows]


def test_class_named_subfolders_are_labels(trained_run, test_batch, tmp_path):
    images, labels = batch_images(test_batch)
    for i in range(12):
        target = tmp_path / "labelled" / CLASSES[labels[i]]
        target.mkdir(parents=True, exist_ok=True)
        write_png(torch.from_numpy(images[i].copy()), str(target / f"{i:02d}.png"))
    summary, rows = predict(trained_run, tmp_path / "out", input=tmp_path / "labelled")
    assert len(rows) == 12 and rows[0]["File"].split("/")[0] in CLASSES
    assert summary["labelled"] == 12


def test_bad_inputs_are_clear_errors(trained_run, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        predict(trained_run, tmp_path, input=tmp_path / "missing.npy")
    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(CorruptDataError, match="uint8"):
        predict(trained_run, tmp_path, input=floats)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(CorruptDataError, match="N x 32 x 32 x 3"):
        predict(trained_run, tmp_path, input=wrong)
    with pytest.raises(ConfigError, match="exactly one"):
        predict(trained_run, tmp_path)


def test_mismatched_model_and_checkpoint(trained_run, test_batch, tmp_path):
    with pytest.raises(CheckpointMismatchError, match="not saved from this model"):
        predict(trained_run, tmp_path, input=test_batch, run_overrides="['model.net.shortcut=B']")
    result = run_cli(
        [
            "predict.py",
            f"run_dir={trained_run}",
            f"input={test_batch}",
            "run_overrides=['model.net.depth=14']",
            f"hydra.run.dir={tmp_path / 'cli'}",
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "not saved from this model" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_and_eval_commands_print_each_message_once_and_predict_writes_in_its_folder(
    trained_run, test_batch, tmp_path
):
    """As a user runs them (Python's default warning filters, from another folder): no repeated line, no Lightning
    advert or warning they cannot act on; a relative output= lands in predict's own output folder, with its
    documented summary beside it."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    user = {"PYTHONWARNINGS": ""}
    predicted = run_cli(
        [str(ROOT / "predict.py"), f"run_dir={trained_run}", f"input={test_batch}", "output=sub/preds.csv",
         f"hydra.run.dir={tmp_path}/predict_run"], cwd=elsewhere, env=user,
    )
    evaluated = run_cli([str(ROOT / "eval.py"), f"run_dir={trained_run}", f"hydra.run.dir={tmp_path}/eval_run"],
                        cwd=elsewhere, env=user)
    for result in (predicted, evaluated):
        assert result.returncode == 0, result.stderr[-2000:]
        output = result.stdout + result.stderr
        repeated = {line: n for line, n in Counter(messages(output)).items() if n > 1}
        assert not repeated, repeated
        assert "Tip:" not in output and "litlogger" not in output and "LeafSpec" not in output, output
        assert "GPU available" in output  # Lightning's own messages still reach the console, once
    csv_path = tmp_path / "predict_run" / "sub" / "preds.csv"
    assert f"wrote 100 predictions to {csv_path}" in predicted.stdout
    assert not any(elsewhere.iterdir()), "nothing is written into the folder predict.py was started from"
    summary = json.loads((csv_path.parent / "preds_summary.json").read_text())
    documented = {"run_dir", "checkpoint", "input", "predictions", "count", "predicted_counts",  # README, Predictions
                  "accuracy", "labelled", "per_class", "confusion_matrix"}
    assert set(summary) == documented
    assert summary["predictions"] == str(csv_path) and summary["count"] == 100
    assert Path(summary["confusion_matrix"]).is_file()


def test_output_path_rules(tmp_path):
    folder = tmp_path / "run"
    assert output_path(None, folder) == folder / "predictions.csv"
    assert output_path("a/b.csv", folder) == folder / "a" / "b.csv"
    assert output_path(str(tmp_path / "abs.csv"), folder) == tmp_path / "abs.csv"
    assert output_path("out/", folder) == folder / "out" / "predictions.csv"
    assert output_path(str(tmp_path), folder) == tmp_path / "predictions.csv"  # an existing folder
