"""Compare Optuna searches (e.g. pruned vs unpruned): epochs trained, trials by state, best value and trial.

    python scripts/compare_searches.py <study folder> [<study folder> ...] [--out DIR]

``--out DIR`` also writes the rows to ``DIR/result.json`` (the results ledger shows it: ``make reproduce LAB=robust``).

Each folder is a search's sweep folder (``optimization_results.yaml``, written when the search ends). The first is
the reference: the others' epochs are given as a fraction of its epochs, and their best value as a difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from dllabs.reporting.table import show_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="folder for result.json")
    args = parser.parse_args(argv)
    summaries = [OmegaConf.load(folder / "optimization_results.yaml") for folder in args.folders]
    reference = summaries[0]
    rows = []
    for number, (folder, summary) in enumerate(zip(args.folders, summaries, strict=True)):
        epochs, best = summary.epochs_trained, summary.get("best_value")
        rows.append({
            "study": folder.name,
            "trials": ", ".join(f"{state} {count}" for state, count in summary.trials.items() if count),
            "epochs trained": epochs,
            "epochs vs first": f"{reference.epochs_trained / epochs:.2f}x fewer" if number and epochs else "",
            "best value": best,
            "best vs first": best - reference.best_value if number and best is not None else None,
            "best trial": summary.get("best_trial"),
        })
    show_table(pd.DataFrame(rows), title="Optuna searches", digits=5)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = {row["study"]: {k: v for k, v in row.items() if k != "study"} for row in rows}
        (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")

if __name__ == "__main__":
    main()
