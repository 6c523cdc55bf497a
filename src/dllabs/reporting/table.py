"""The one table printer of dllabs: a pandas DataFrame shown with rich, and written as Markdown and CSV."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table


def cell(value: Any, digits: int = 4) -> str:
    """A value as a table cell: floats to ``digits`` significant digits, missing (None/NaN) as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def markdown(frame: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """``frame`` as a Markdown table (pandas' ``to_markdown`` needs tabulate, which dllabs does not depend on)."""
    frame = frame.reset_index() if index else frame
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def show_table(
    frame: pd.DataFrame,
    title: str | None = None,
    out: str | Path | None = None,
    digits: int = 4,
    index: bool = False,
    console: Console | None = None,
) -> str:
    """Print ``frame`` as a rich table; with ``out`` (a path without suffix) also write ``out.md`` and ``out.csv``.

    Returns the Markdown text. Piped output is not wrapped: a table keeps its natural width, so each cell
    stays on one line and can be grepped.
    """
    frame = frame.reset_index() if index else frame
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=100_000, highlight=False)
    table = Table(title=title)
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
        table.add_column(str(column), justify="right" if numeric else "left", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(cell(v, digits) for v in row))
    console.print(table)
    text = markdown(frame, digits)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text + "\n")
        frame.to_csv(out.with_suffix(".csv"), index=False)
    return text
