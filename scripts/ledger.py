"""Rewrite the results ledger from recorded runs: docs/results/<lab>.json and docs/results.md.

    python scripts/ledger.py LAB [LAB ...]                 # from outputs/reproduce/<lab>/ (make reproduce LAB=...)
    python scripts/ledger.py simplenn --runs /other/outputs/reproduce
    python scripts/ledger.py --index                       # only re-render docs/results.md from the JSONs

``make reproduce LAB=<lab>`` calls this at its end; run it by hand after copying run folders from another machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dllabs.errors import ConfigError, run_command
from dllabs.labs import LABS
from dllabs.reporting.ledger import build_lab
from dllabs.reporting.ledger_markdown import update_readme, write_index

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labs", nargs="*", metavar="LAB",
                        help=f"one of: {', '.join(LABS)}")
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "reproduce",
                        help="folder holding <lab>/reproduce.json and the step folders")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results", help="the ledger's JSON folder")
    parser.add_argument("--index", action="store_true", help="only re-render <out>.md from the JSONs")
    args = parser.parse_args(argv)
    if not args.labs and not args.index:
        parser.error("name a lab, or --index")
    unknown = sorted(set(args.labs) - set(LABS))
    if unknown:
        parser.error(f"unknown lab {', '.join(unknown)}; labs: {', '.join(LABS)}")

    def write() -> None:
        for lab in args.labs:
            lab_dir = args.runs / lab
            if not (lab_dir / "reproduce.json").exists():
                raise ConfigError(f"{lab_dir}/reproduce.json is missing: run `make reproduce LAB={lab}` first")
            ledger = build_lab(lab, lab_dir, args.out)
            print(f"{lab}: {len(ledger['steps'])} steps -> {args.out / (lab + '.json')}")
        print(f"wrote {write_index(args.out, args.out.with_suffix('.md'))}")
        if args.out.resolve() == (ROOT / "docs" / "results").resolve() and update_readme(ROOT / "README.md", args.out):
            print("updated the README's ledger blocks")

    return run_command(write)


if __name__ == "__main__":
    sys.exit(main())
