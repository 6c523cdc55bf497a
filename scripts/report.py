"""Summarise a multirun folder: `python scripts/report.py outputs/<task>/multiruns/<time> [--out DIR]`."""

from __future__ import annotations

import argparse
import sys

from dllabs.errors import run_command
from dllabs.reporting.multirun import report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", help="a multirun folder (or a folder of run folders, or one run folder)")
    parser.add_argument("--out", help="where to write report.md/.csv/_curves.png (default: the folder)")
    args = parser.parse_args()

    def show() -> None:
        report(args.folder, args.out)
        print(f"\nwritten: report.md, report.csv, report_curves.png in {args.out or args.folder}")

    return run_command(show)


if __name__ == "__main__":
    sys.exit(main())
