"""The lab registry (src/dllabs/labs.py) and docs/labs.md: the page's table is the registry's, every file it
names exists, every experiment and sweep in conf/ belongs to exactly one lab, and an unknown lab or step is an
error."""

from __future__ import annotations

import re

import pytest

from dllabs.errors import ConfigError
from dllabs.labs import LABS, TABLE_BLOCK, lab, table
from tests.conftest import ROOT

PAGE = (ROOT / "docs" / "labs.md").read_text()
ROWS = [line for line in PAGE.splitlines() if re.match(r"^\| \d ", line)]


def test_the_page_table_is_the_registrys():
    match = TABLE_BLOCK.search(PAGE)
    assert match, "docs/labs.md lost its <!-- labs --> block"
    assert match.group(2) == table(), "docs/labs.md differs from src/dllabs/labs.py: run python scripts/labs_table.py"


def test_one_row_per_lab():
    assert [row.split("|")[1].split()[0] for row in ROWS] == [str(n) for n in range(1, 8)]


def test_every_named_file_exists():
    named = set(re.findall(r"`([\w./]+\.py)`", PAGE)) | set(re.findall(r"([\w./]+\.py)", PAGE))
    roots = [ROOT / "src" / "dllabs", ROOT / "tests", ROOT / "scripts", ROOT]
    missing = [name for name in sorted(named) if not any((root / name).exists() for root in roots)]
    assert not missing, f"docs/labs.md names files that do not exist: {missing}"


def _owners(attribute: str) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for entry in LABS.values():
        for name in getattr(entry, attribute):
            owners.setdefault(name, []).append(entry.name)
    return owners


@pytest.mark.parametrize(("attribute", "folder"), [("experiments", "experiment"), ("sweeps", "sweep")])
def test_every_experiment_and_sweep_belongs_to_exactly_one_lab(attribute, folder):
    in_conf = {p.stem for p in (ROOT / "conf" / folder).glob("*.yaml")}
    owners = _owners(attribute)
    assert set(owners) == in_conf, f"in conf/{folder} only: {in_conf - set(owners)}; in labs.py only: {set(owners) - in_conf}"
    assert all(len(labs) == 1 for labs in owners.values()), {k: v for k, v in owners.items() if len(v) > 1}


def test_every_step_names_configs_that_exist_and_steps_it_needs():
    for entry in LABS.values():
        names = [step.name for step in entry.steps]
        assert len(set(names)) == len(names), entry.name
        for step in entry.steps:
            assert set(step.needs) <= set(names[: names.index(step.name)]), (entry.name, step.name)
            for argument in step.argv:
                group, _, option = argument.partition("=")
                if group in ("experiment", "sweep"):
                    assert (ROOT / "conf" / group / f"{option}.yaml").is_file(), (entry.name, step.name, argument)
            if step.kind != "report":
                assert step.argv[0] == "train.py", (entry.name, step.name)


def test_resnet20_keeps_the_fast_cpu_step():
    assert lab("resnet20").step("fast_cpu").argv == ("train.py", "experiment=resnet20_fast_cpu")


def test_an_unknown_lab_or_step_is_an_error_naming_what_exists():
    with pytest.raises(ConfigError, match="no lab lmss; labs: lms, layers"):
        lab("lmss")
    with pytest.raises(ConfigError, match="lab lms has no step referense; steps: reference, rates, rates_report"):
        lab("lms").step("referense")
