"""conf/pairings.yaml names every data and model option, and a nonsense pairing stops a real command line with
one error line (exit 2) before any data is read."""

from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, run_cli


def test_the_table_lists_every_data_and_model_option():
    table = OmegaConf.load(CONF_DIR / "pairings.yaml")
    assert sorted(table.data) == sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
    assert sorted(table.model) == sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    kinds = set(table.data.values())
    assert all(set(takes) <= kinds for takes in table.model.values())


def test_an_lstm_on_cifar_images_stops_with_one_line(tmp_path):
    result = run_cli(["train.py", "model=lstm", "data=cifar10", f"paths.log_dir={tmp_path}",
                      f"data.data_dir={tmp_path / 'empty'}"])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (
        "error: model=lstm does not fit data=cifar10: model=lstm takes token sequences (data=imdb), "
        "data=cifar10 holds images (model=simplenn|simplenn3|simplenn_robust|resnet20|resnet20_fast)"
    )
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("metrics.json")) and not (tmp_path / "empty").exists()
