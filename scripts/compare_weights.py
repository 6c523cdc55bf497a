"""Compare the weight distributions of finished runs in one figure (lab 4: L1 vs L2 at 1e-4).

    python train.py -m experiment=simplenn_robust sweep=robust_l1_vs_l2
    python scripts/compare_weights.py outputs/simplenn_robust/multiruns/<time>/0 outputs/simplenn_robust/multiruns/<time>/1
    python scripts/compare_weights.py RUN_A RUN_B --labels L1 L2 --out reports/l1_vs_l2.png --checkpoint last

Writes the figure (default: weight_distributions.png next to the runs) and its numbers (.json beside it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dllabs.errors import run_command
from dllabs.reporting.table import show_table
from dllabs.reporting.weights import compare_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="two or more run folders made by train.py")
    parser.add_argument(
        "--labels", nargs="+", default=None, help="legend labels (default: regulariser + score)"
    )
    parser.add_argument("--out", type=Path, default=None, help="figure file or folder")
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="best", help="which checkpoint to read"
    )
    args = parser.parse_args(argv)

    def show() -> None:
        table, figure, _ = compare_weights(args.runs, args.out, args.labels, args.checkpoint)
        show_table(table, title="penalised weights")
        print(f"figure: {figure}")

    return run_command(show)


if __name__ == "__main__":
    sys.exit(main())
