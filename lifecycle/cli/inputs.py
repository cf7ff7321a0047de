"""What the commands read: configs and event logs, with their errors turned into exit codes.

Each helper calls the library (``features``, ``training``) and answers a failure with
:func:`lifecycle.cli.options.fail`; heavy libraries are imported inside, so ``lifecycle --help``
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.cli.options import EXIT_FAILED, EXIT_USAGE, fail
from lifecycle.cli.output import progress, warn

if TYPE_CHECKING:
    import pandas as pd

    from lifecycle.features.config import LifecycleConfig
    from lifecycle.training.config import TrainingConfig


def check_events(source: str | Path) -> None:
    """Fail at once when ``--events`` names a file or folder that is not there.

    Called first by every command that reads events, before pandas, DuckDB, MLflow or
    LightGBM are imported, so a wrong path is reported in well under a second. A SQLAlchemy
    URL (``dialect://...``) is left to the reader.

    Examples
    --------
    >>> check_events("sqlite:///events.db")  # a URL: checked when it is read
    """
    text = str(source)
    if "://" in text or Path(text).exists():
        return
    raise fail(f"{text}: no such file or folder", EXIT_FAILED)


def check_out_file(out: Path) -> None:
    """Fail at once when ``--out`` is a folder (it names the Parquet file to write)."""
    if out.is_dir():
        raise fail(f"--out {out} is a folder; give the path of a Parquet file", EXIT_USAGE)


def check_store(tracking_uri: str | None) -> str:
    """Return the tracking URI, failing at once when its local SQLite file does not exist.

    Commands that only read the store call this before importing MLflow (reading a missing
    SQLite file would make MLflow create an empty store, and take seconds to do it).
    """
    from lifecycle.models.locate import missing_store, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    problem = missing_store(uri)
    if problem:
        raise fail(problem, EXIT_USAGE)
    return uri


def load_config(path: Path | None) -> LifecycleConfig:
    """Return the lifecycle config at ``path`` (default: the shipped one)."""
    from lifecycle.features.config import load_config as load

    try:
        return load(path)
    except ValueError as exc:
        raise fail(str(exc), EXIT_FAILED) from exc


def load_training_config(path: Path | None, **overrides: Any) -> TrainingConfig:
    """Return the training config at ``path``, with dotted ``overrides`` (None: not given)."""
    from lifecycle.training.config import TrainingConfig
    from lifecycle.training.config import load_training_config as load

    try:
        cfg = load(path)
        if overrides:
            data = cfg.model_dump()
            for dotted, value in overrides.items():
                if value is None:
                    continue
                node = data
                *parents, leaf = dotted.split(".")
                for key in parents:
                    node = node[key]
                node[leaf] = value
            cfg = TrainingConfig.model_validate(data)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    return cfg


def read_mapping(events: str, mapping: str | None) -> tuple[str | None, Any]:
    """Return the source to read and the loaded mapping, for one log or a mapping's sources.

    ``--events`` may name a mapping YAML with ``sources:`` (then ``--mapping`` is not needed,
    or names the same file): the mapping's sources are read and the source is None.
    """
    from lifecycle.features.mapping import SourcesMapping, load_mapping, names_sources

    if mapping is None and names_sources(events):
        mapping = events
    try:
        loaded = load_mapping(mapping)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc), EXIT_FAILED) from exc
    if isinstance(loaded, SourcesMapping):
        if mapping is None or Path(events).resolve() != Path(mapping).resolve():
            raise fail(
                f"--mapping {mapping} names its own sources: give it as --events "
                f"(`--events {mapping}`), with no other log",
                EXIT_USAGE,
            )
        return None, loaded
    return events, loaded


def warn_validation(result: Any) -> None:
    """Print the validation summary's loud warnings (a large share quarantined) in bold."""
    from rich.text import Text

    from lifecycle.cli.output import err_console

    for line in result.warnings:
        err_console().print(
            Text.assemble(("warning:", "bold red"), " ", (line, "bold yellow")),
            soft_wrap=True,
            highlight=False,
        )


def open_events(
    source: str, mapping: str | None, table: str | None, config: LifecycleConfig
) -> tuple[Any, dict[str, int]]:
    """Return events for feature work and counts.

    Canonical Parquet (from `simulate` or `validate`: the canonical columns and types) is read
    as it is; anything else is validated in memory first and its bad rows are left out.
    """
    path = Path(source)
    if mapping is None and table is None and (path.suffix == ".parquet" or path.is_dir()):
        import pyarrow.parquet as pq

        from lifecycle.features.build import event_files, is_canonical

        try:
            files = event_files(path) if path.exists() else []
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc), EXIT_FAILED) from exc
        if files and is_canonical(files):
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            return source, {"events": int(rows), "rows_quarantined": 0}
    from lifecycle.features.io import load_events
    from lifecycle.features.validate import Plausibility, SchemaError

    log, loaded = read_mapping(source, mapping)
    try:
        rules = Plausibility.from_config(config)
        result = load_events(
            log, mapping=loaded, table=table, vocabulary=config.vocabulary, plausibility=rules
        )
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc), EXIT_FAILED) from exc
    if result.rows_accepted == 0:
        raise fail(f"no usable rows in {source}: run `lifecycle validate` to see why", EXIT_FAILED)
    if result.rows_quarantined:
        warn(
            f"{result.rows_quarantined:,} of {result.rows_in:,} rows failed validation "
            "and were left out; run `lifecycle validate` to get the quarantine file."
        )
    warn_validation(result)
    return result.events, {
        "events": int(result.events_out),
        "rows_quarantined": int(result.rows_quarantined),
    }


def cutoff_or_default(events: Any, cutoff: str | None) -> pd.Timestamp:
    """Return ``cutoff`` parsed, or midnight UTC after the last event (every event counts)."""
    import pandas as pd

    from lifecycle.features.build import event_time_range, parse_cutoff

    if cutoff:
        try:
            return parse_cutoff(cutoff)
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from exc
    try:
        _, last = event_time_range(events)
    except ValueError as exc:
        raise fail(str(exc), EXIT_FAILED) from exc
    return last.normalize() + pd.Timedelta(days=1)


def features_at(
    events: Any,
    cutoffs: list[Any],
    config: LifecycleConfig,
    show_progress: bool = True,
    memory_limit: str | None = None,
) -> pd.DataFrame:
    """Build the features at each cutoff, with a progress bar."""
    import duckdb

    from lifecycle.features.build import build_features

    with progress("features", total=len(cutoffs), enabled=show_progress) as advance:
        try:
            return build_features(
                events, cutoffs=cutoffs, config=config, memory_limit=memory_limit, progress=advance
            )
        except duckdb.Error as exc:
            raise fail(f"could not read the events: {exc}", EXIT_FAILED) from exc


def features_for_report(
    events: str,
    cutoff: str | None,
    mapping: str | None,
    table: str | None,
    config: Path | None,
    as_json: bool,
) -> tuple[pd.Timestamp, pd.DataFrame]:
    """Open the events and build features at one cutoff (default: after the last event)."""
    cfg = load_config(config)
    data, _ = open_events(events, mapping, table, cfg)
    cut = cutoff_or_default(data, cutoff)
    return cut, features_at(data, [cut], cfg, show_progress=not as_json)


def find_truth(events: str, truth: Path | None) -> pd.DataFrame | None:
    """Return the simulator's truth table: the given file, or truth.parquet beside the events."""
    import pandas as pd

    if truth is None:
        path = Path(events)
        folder = path if path.is_dir() else path.parent
        candidate = folder / "truth.parquet"
        if not candidate.exists():
            return None
        truth = candidate
    return pd.read_parquet(truth)
