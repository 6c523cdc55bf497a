"""eval.py rebuilds a model from its run's own config and evaluates the best checkpoint."""

import json

from tests.conftest import QUIET, run_cli


def test_eval_uses_the_runs_config_not_todays_defaults(cifar_fixture, tmp_path):
    run_dir = tmp_path / "run"
    trained_cli = run_cli(
        ["train.py", *cifar_fixture, *QUIET, "model.net.norm=batchnorm", "model.net.activation=swish",
         "trainer.max_epochs=2", "data.train_subset=96", f"hydra.run.dir={run_dir}"]
    )
    assert trained_cli.returncode == 0, trained_cli.stderr[-2000:]
    trained = json.loads((run_dir / "metrics.json").read_text())

    result = run_cli(["eval.py", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path}/eval"])
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads((tmp_path / "eval" / "eval_metrics.json").read_text())
    assert evaluated["checkpoint"] == trained["best_checkpoint"]
    assert abs(evaluated["metrics"]["test/acc"] - trained["metrics"]["test/acc"]) < 1e-6


def test_eval_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli(["eval.py", f"run_dir={tmp_path}", f"hydra.run.dir={tmp_path}/eval"])
    assert result.returncode == 2
    assert "is not a dllabs run folder" in result.stderr
