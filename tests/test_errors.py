"""Bad input gets one clear message and a non-zero exit, never a traceback wall."""

import os
import pickle
from pathlib import Path

import pytest

from dllabs.data.cifar10 import CIFAR10Dataset, locate
from dllabs.errors import CheckpointMismatchError, CorruptDataError, DatasetNotFoundError
from tests.conftest import QUIET, run_cli, run_train


def test_unknown_group_option_lists_the_choices():
    result = run_cli(["train.py", "model=no_such_model"])
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: model=no_such_model: no such option; choose one of ")
    assert "simplenn" in line.split("choose one of ")[1].split(", ")  # the available options are listed


def test_missing_dataset_says_where_to_put_which_file(tmp_path):
    result = run_cli(["train.py", f"data.data_dir={tmp_path}", "data.download=false", f"hydra.run.dir={tmp_path}/run"])
    assert result.returncode == 2
    assert "CIFAR-10 not found under" in result.stderr and "cifar-10-python.tar.gz" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_archive_is_reported_and_leaves_nothing_extracted(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08 this is not a real archive" * 50)
    with pytest.raises(CorruptDataError, match="not a readable CIFAR-10 archive"):
        locate(tmp_path, download=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_truncated_batch_is_reported(cifar_fixture, tmp_path):
    source = cifar_fixture[0].split("=", 1)[1]
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in os.listdir(f"{source}/cifar-10-batches-py"):
        data = (Path(source) / "cifar-10-batches-py" / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2] if name == "data_batch_3" else data)
    with pytest.raises(CorruptDataError, match="data_batch_3 is not a valid CIFAR-10 batch"):
        CIFAR10Dataset(tmp_path, train=True)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_crafted_pickle_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]:
        (folder / name).write_bytes(pickle.dumps({"data": _Exploit(), "labels": [0]}, protocol=2))
    with pytest.raises(CorruptDataError, match="refusing to load global"):
        CIFAR10Dataset(tmp_path, train=True)
    assert not (tmp_path / "pwned").exists()


def test_empty_folder_raises_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="DLLABS_DATA_DIR"):
        locate(tmp_path, download=False)


def test_checkpoint_from_another_model_is_refused(cifar_fixture, tmp_path):
    run_train([*cifar_fixture, "trainer.max_epochs=1", "data.train_subset=32"], tmp_path / "plain")
    ckpt = tmp_path / "plain" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointMismatchError, match="not saved from this model"):
        run_train([*cifar_fixture, "model.net.norm=batchnorm", f"ckpt_path={ckpt}"], tmp_path / "bn")
    result = run_cli(
        ["train.py", *cifar_fixture, *QUIET, "model.net.norm=batchnorm", f"ckpt_path={ckpt}",
         f"hydra.run.dir={tmp_path}/bn_cli"]
    )
    assert result.returncode == 2
    assert "error: checkpoint" in result.stderr and "missing" in result.stderr
    assert "Traceback" not in result.stderr
