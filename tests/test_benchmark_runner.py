"""The benchmark runner's argument handling (``benchmarks/run_all.py``), without running any benchmark."""

import sys

import pytest

from tests.conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_all

NAMES = ["cifar", "gpt2", "imdb_preprocess", "lms", "lstm", "startup"]


def test_discovers_every_bench_script():
    assert sorted(run_all.discover()) == NAMES


@pytest.mark.parametrize(
    ("only", "skip", "expected"),
    [
        (None, [], NAMES),
        (["cifar"], [], ["cifar"]),
        (["startup", "lms"], [], ["lms", "startup"]),  # discovery order, not argument order
        (None, ["gpt2", "lstm"], ["cifar", "imdb_preprocess", "lms", "startup"]),
        (["cifar", "lms"], ["lms"], ["cifar"]),
    ],
)
def test_choose(only, skip, expected):
    assert run_all.choose(run_all.discover(), only, skip) == expected


@pytest.mark.parametrize(("only", "skip"), [(["cifr"], []), (None, ["nope"]), (["cifar"], ["nope"])])
def test_choose_rejects_unknown_names(only, skip):
    with pytest.raises(KeyError, match="no benchmark named"):
        run_all.choose(run_all.discover(), only, skip)


def test_unknown_name_is_one_error_line_and_exit_2():
    result = run_cli(["benchmarks/run_all.py", "--only", "cifar", "nosuch"], timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: no benchmark named nosuch; known: " + ", ".join(NAMES)
    )
    assert "== cifar" not in result.stdout  # nothing ran
