"""The options the ``lifecycle`` commands share, and the one way a command fails.

Each option is defined once here and used by every command that takes it, so ``--events``,
``--json`` or ``--tracking-uri`` mean the same everywhere. Two options read the environment
(through Typer): ``--tracking-uri`` (``MLFLOW_TRACKING_URI``) and ``--project``
(``LIFECYCLE_PROJECT``, the variable the service reads too).

Exit codes, the same for every command:

- 0: done;
- 1 (:data:`EXIT_FAILED`): the work failed: the events or a config could not be used, a file
  could not be written, training stopped, a challenger was refused;
- 2 (:data:`EXIT_USAGE`): bad usage: an option's value is wrong or conflicts with another, or
  something the command needs is not there (a store, a champion, a run, an earlier champion
  to roll back to). Typer answers its own usage errors with 2 as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from lifecycle.cli.output import err_console

EXIT_FAILED = 1
"""Exit code when the work failed (see the module docstring)."""

EXIT_USAGE = 2
"""Exit code for bad usage, or when something the command needs is missing."""


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: <message>`` on standard error and return the exit to raise.

    Parameters
    ----------
    message
        One sentence: what went wrong and, where it helps, what to run.
    code
        :data:`EXIT_FAILED` or :data:`EXIT_USAGE`.

    Returns
    -------
    typer.Exit
        Raise it (``raise fail(...) from exc``) to end the command with ``code``.
    """
    line = Text.assemble(("error:", "bold red"), " ", message)
    err_console().print(line, soft_wrap=True, highlight=False)
    return typer.Exit(code)


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the summary as one JSON object instead of tables.")
]
EventsOpt = Annotated[
    str,
    typer.Option(
        "--events",
        help=(
            "Event log: canonical Parquet file or folder (from `simulate` or `validate`), or a "
            "raw CSV / Parquet / DuckDB file / SQLAlchemy URL with --mapping and --table, or a "
            "mapping YAML with `sources:` (several files, one log)."
        ),
    ),
]
CanonicalEventsOpt = Annotated[
    Path,
    typer.Option("--events", help="Canonical events (Parquet from `simulate` or `validate`)."),
]
MappingOpt = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        help=(
            "Column mapping for a raw log: a shipped name (cdnow, cdnow_sample, online_retail) "
            "or a YAML file. Not needed for canonical Parquet."
        ),
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option("--table", help="Table name when --events is a DuckDB file or a SQLAlchemy URL."),
]
CutoffOpt = Annotated[
    str | None,
    typer.Option(
        "--cutoff",
        help="Cutoff time (UTC unless it has an offset). Default: midnight after the last event.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Lifecycle YAML (vocabulary, stage rules, windows). Default: the shipped one.",
        exists=True,
        dir_okay=False,
    ),
]
TrainingConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=(
            "Training YAML (horizons, cutoffs, protocol, tuning; its `lifecycle:` key holds the "
            "lifecycle config or a path to one). Default: built-in defaults that suit the "
            "simulator."
        ),
        exists=True,
        dir_okay=False,
    ),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI. Default: sqlite:///mlflow.db in the current folder.",
    ),
]
AliasOpt = Annotated[str, typer.Option("--alias", help="Registry alias of the models to use.")]


def _project(value: str) -> str:
    """Check a ``--project`` value (it becomes part of registered model names)."""
    from lifecycle.models.locate import check_project

    try:
        return check_project(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _dataset(value: str | None) -> str | None:
    """Check a ``--dataset`` value."""
    from lifecycle.models.locate import check_dataset

    try:
        return None if value is None else check_dataset(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


ProjectOpt = Annotated[
    str,
    typer.Option(
        "--project",
        envvar="LIFECYCLE_PROJECT",
        callback=_project,
        help=(
            "Project (data set or business unit) whose models to use: lowercase letters, digits "
            "and '-'. Project P registers P-next-stage, P-churn, P-clv, P-uplift; the default "
            "keeps the lifecycle-* names."
        ),
    ),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        callback=_dataset,
        help=(
            "Name of the data set the models learn from, recorded with every version; promote "
            "refuses to replace a champion of another data set. Default: the mapping's name, "
            "else the events file's stem (its folder's for events.parquet)."
        ),
    ),
]
