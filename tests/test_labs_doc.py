"""docs/labs.md matches the tree: every file, experiment, sweep and ledger lab it names exists, and every
experiment in conf/experiment/ has its row."""

from __future__ import annotations

import re

from dllabs.reporting.ledger import LABS
from tests.conftest import ROOT

PAGE = (ROOT / "docs" / "labs.md").read_text()
ROWS = [line for line in PAGE.splitlines() if re.match(r"^\| \d ", line)]


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def test_one_row_per_lab():
    assert [_cells(row)[0].split()[0] for row in ROWS] == [str(n) for n in range(1, 8)]


def test_every_named_file_exists():
    named = set(re.findall(r"`([\w./]+\.py)`", PAGE)) | set(re.findall(r"([\w./]+\.py)", PAGE))
    roots = [ROOT / "src" / "dllabs", ROOT / "tests", ROOT / "scripts", ROOT]
    missing = [name for name in sorted(named) if not any((root / name).exists() for root in roots)]
    assert not missing, f"docs/labs.md names files that do not exist: {missing}"


def test_experiments_sweeps_and_ledger_labs_exist_and_every_experiment_is_listed():
    experiments = {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")}
    sweeps = {p.stem for p in (ROOT / "conf" / "sweep").glob("*.yaml")}
    listed_experiments, listed_sweeps = set(), set()
    for row in ROWS:
        first, _, second = _cells(row)[1].partition(";")
        listed_experiments |= set(re.findall(r"`(\w+)`", first)) - {"finetune"}
        listed_sweeps |= set(re.findall(r"`(\w+)`", second))
        ledger = re.findall(r"`(\w+)`", _cells(row)[-1])
        assert ledger and set(ledger) <= set(LABS), row
    assert listed_experiments - {"lora"} <= experiments, listed_experiments - experiments
    assert experiments <= listed_experiments, f"experiments without a row: {experiments - listed_experiments}"
    assert listed_sweeps <= sweeps, listed_sweeps - sweeps
    assert sweeps <= listed_sweeps, f"sweeps without a row: {sweeps - listed_sweeps}"
