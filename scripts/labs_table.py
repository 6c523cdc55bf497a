"""Rewrite the table of docs/labs.md from the lab registry (src/dllabs/labs.py): one row per lab.

    python scripts/labs_table.py            # rewrite it
    python scripts/labs_table.py --check    # exit 1 when docs/labs.md differs from the registry

The table lies between ``<!-- labs -->`` and ``<!-- /labs -->``; the text around it is written by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dllabs.errors import ConfigError, run_command
from dllabs.labs import TABLE_BLOCK, table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "labs.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether docs/labs.md is up to date")
    args = parser.parse_args(argv)
    outcome: list[bool] = []

    def write() -> None:
        text = PAGE.read_text()
        match = TABLE_BLOCK.search(text)
        if match is None:
            raise ConfigError(f"{PAGE} has no <!-- labs --> ... <!-- /labs --> block for the table")
        new = text[: match.start(2)] + table() + text[match.end(2) :]
        outcome.append(new == text)
        if args.check:
            print(f"{PAGE.name} is {'up to date' if new == text else 'out of date: run python scripts/labs_table.py'}")
        elif new != text:
            PAGE.write_text(new)
            print(f"rewrote the table of {PAGE}")

    status = run_command(write)
    return status or (1 if args.check and not all(outcome) else 0)


if __name__ == "__main__":
    sys.exit(main())
