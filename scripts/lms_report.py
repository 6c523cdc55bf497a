"""Summarise an LMS step-size sweep: all MSE curves on one log-scale figure, final MSE per r next to the bounds.

python train.py -m experiment=lms sweep=lms_rates
python scripts/lms_report.py outputs/lms/multiruns/<time>            # writes lms_sweep.png/.csv there
python scripts/lms_report.py outputs/lms/multiruns/<time> --out reports/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dllabs.errors import run_command
from dllabs.reporting.lms import show_sweep_table, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, help="a multirun folder (or any folder holding LMS run folders)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write lms_sweep.png/.csv (default: runs)"
    )
    args = parser.parse_args(argv)

    def show() -> None:
        report = write_report(args.runs, args.out)
        show_sweep_table(report.table)
        print(f"figure: {report.figure_file}\ntable:  {report.table_file}")

    return run_command(show)


if __name__ == "__main__":
    sys.exit(main())
