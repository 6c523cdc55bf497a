"""Issue 25 part 2: a file or folder a command cannot read is one ``error:`` line and exit 2 before any run folder.

Each case runs the command a user would, with ``paths.log_dir`` in a fresh folder, and checks that nothing was
made there (no run folder, no failed metrics.json, no TensorBoard events).
"""

from pathlib import Path

import pytest

from tests.conftest import QUIET, run_cli

CSV = {  # a real corrupt file each: what the LMS lab's data.path may point at
    "truncated": ("x1,x2,d\n1,2,3\n4,5", "1 row(s) contain NaN or infinite values"),
    "non_numeric": ("x1,x2,d\n1,a,3\n4,5,6\n", "holds non-numeric values"),
    "missing_column": ("x1,x2,y\n1,2,3\n4,5,6\n", "has no target column 'd'"),
    "nan": ("x1,x2,d\n1,NaN,3\n4,5,6\n", "1 row(s) contain NaN or infinite values"),
    "empty": ("", "cannot read"),
    "binary": (bytes(range(256)) * 4, "cannot read"),
    "header_only": ("x1,x2,d\n", "expected (N, k) with N >= 2 rows"),
}


def _refused(args: list[str], tmp_path: Path, expected: str, script: str = "train.py") -> None:
    outputs = tmp_path / "outputs"
    result = run_cli([script, *args, f"paths.log_dir={outputs}"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr[-3000:]
    assert not outputs.exists(), sorted(outputs.rglob("*"))


@pytest.mark.parametrize("case", sorted(CSV))
def test_a_corrupt_lms_csv_is_refused_before_the_run_folder(case, tmp_path):
    content, expected = CSV[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _refused(["experiment=lms", f"data.path={path}"], tmp_path, expected)


def test_a_folder_as_lms_data_path_is_refused(tmp_path):
    (tmp_path / "data.csv").mkdir()
    _refused(["experiment=lms", f"data.path={tmp_path / 'data.csv'}"], tmp_path, "is a folder")


def test_checkpoint_paths_that_cannot_be_resumed_are_refused(tmp_path):
    _refused(["experiment=lms", f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path, "does not exist")
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    _refused(["experiment=lms", f"ckpt_path={tmp_path / 'notes.txt'}"], tmp_path, "cannot be read as a checkpoint")
    _refused(["experiment=lms", "ckpt_path=last"], tmp_path, "ckpt_path=last: no last.ckpt")


def test_data_folders_and_sizes_that_cannot_work_are_refused(tmp_path):
    _refused(["experiment=lms", f"data.data_dir={tmp_path / 'missing'}"], tmp_path, "no such folder")
    _refused([*QUIET, "data.val_size=60000"], tmp_path, "data.val_size=60000: CIFAR-10 has 50000 training images")


def test_eval_and_predict_without_a_run_or_an_input_are_refused(tmp_path):
    _refused([f"run_dir={tmp_path / 'missing'}"], tmp_path, "is not a dllabs run folder", script="eval.py")
    run = tmp_path / "run"
    trained = run_cli(["train.py", "experiment=lms", *QUIET, "trainer.max_epochs=1", "logger=csv",
                       f"hydra.run.dir={run}"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    _refused([f"run_dir={run}"], tmp_path, "predict.py needs input=", script="predict.py")
    _refused([f"run_dir={run}", f"input={tmp_path / 'nothing.npy'}"], tmp_path, "no such file", script="predict.py")
