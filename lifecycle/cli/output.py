"""How the ``lifecycle`` commands print: progress on stderr, tables, then one summary line.

Progress and errors go to standard error; the last line on standard output is a one-line
summary, or with ``--json`` one JSON object (counts as integers) for scripts. The consoles are
made on first use, not on import.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd


@functools.cache
def out_console() -> Console:
    """Return the console on standard output (tables)."""
    return Console()


@functools.cache
def err_console() -> Console:
    """Return the console on standard error (progress, warnings, errors)."""
    return Console(stderr=True)


def emit(summary: Mapping[str, Any], line: str, as_json: bool) -> None:
    """Print the final summary: one JSON object, or the human ``line`` as it is."""
    text = json.dumps(summary, default=str) if as_json else line
    sys.stdout.write(text + "\n")


def note(message: str) -> None:
    """Print a dimmed progress message on standard error."""
    err_console().print(f"[dim]{message}[/]")


def warn(message: str) -> None:
    """Print a warning (yellow) on standard error."""
    err_console().print(f"[yellow]{message}[/]")


@contextmanager
def progress(
    label: str, total: int | None, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """Show a progress bar on stderr; yields a callback that advances it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn()]
    with Progress(
        *columns, TimeElapsedColumn(), console=err_console(), transient=True, disable=not enabled
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda k: bar.advance(task, k)


def print_table(frame: pd.DataFrame, title: str, formats: Mapping[str, str]) -> None:
    """Print a frame as a table on standard output, numbers right-aligned and formatted."""
    from pandas.api.types import is_numeric_dtype

    numeric = {col for col in frame.columns if is_numeric_dtype(frame[col])}
    rows = [dict(zip(frame.columns, row, strict=True)) for row in frame.itertuples(index=False)]
    _print(rows, list(frame.columns), numeric, title, formats)


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    title: str,
    formats: Mapping[str, str],
) -> None:
    """Print rows (one mapping each) as a table, like :func:`print_table` but without pandas.

    A column is right-aligned when every value in it is a number; a missing value is a dash.

    Examples
    --------
    >>> print_rows([{"model": "model", "roc_auc": 0.81}], ["model", "roc_auc"], "churn",
    ...            {"roc_auc": ".4f"})  # doctest: +SKIP
    """
    numeric = {
        col
        for col in columns
        if all(isinstance(row.get(col), int | float) or row.get(col) is None for row in rows)
    }
    _print(rows, columns, numeric, title, formats)


def _print(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    numeric: set[str],
    title: str,
    formats: Mapping[str, str],
) -> None:
    """Render rows as a rich table on standard output."""
    table = Table(title=title, title_justify="left")
    for col in columns:
        right = col in numeric
        table.add_column(str(col), justify="right" if right else "left", no_wrap=not right)
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col)
            fmt = formats.get(col)
            if value is None or (isinstance(value, float) and value != value):
                cells.append("-")
            elif fmt:
                cells.append(format(value, fmt))
            else:
                cells.append(str(value))
        table.add_row(*cells)
    # Piped output defaults to 80 columns; tables are easier to read unwrapped in logs.
    console = out_console()
    wide = console if console.width >= 120 else Console(file=sys.stdout, width=120)
    wide.print(table)
