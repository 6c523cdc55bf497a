"""Compare language-model runs side by side (full vs LoRA fine-tuning of GPT-2): perplexity before/after,
wall time, tokens/s, trainable parameters, peak memory and the generated text of each.

    python train.py -m experiment=gpt2_full sweep=gpt2_finetune
    python scripts/compare_lm.py outputs/gpt2/multiruns/<time>          # writes lm_compare.md/.png there
    python scripts/compare_lm.py outputs/gpt2/runs/<a> outputs/gpt2/runs/<b> --out reports/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dllabs.errors import run_command
from dllabs.reporting.lm_compare import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="a multirun folder, or two or more run folders")
    parser.add_argument("--out", type=Path, default=None, help="folder for lm_compare.md/.png (default: the multirun)")
    args = parser.parse_args(argv)

    def show() -> None:
        _, written = report(args.runs, args.out, show=True)
        for path in written:
            print(f"written: {path}")

    return run_command(show)


if __name__ == "__main__":
    sys.exit(main())
