"""Read customer event logs from files and databases, and write canonical events and reports.

Sources: CSV (``.csv``, ``.txt``, ``.tsv``, optionally compressed: ``.gz``, ``.bz2``, ``.zip``,
``.xz``, ``.zst``), Parquet (a file or a folder of files), a DuckDB database file (``.duckdb``,
``.ddb``, ``.db``; a ``.db`` file holding SQLite is read as SQLite) and any SQLAlchemy URL
(``sqlite:///events.db``, ``postgresql+psycopg://user@host/db``). CSV columns are read as raw
text so validation sees exactly what the file says; typed sources (Parquet, databases) keep
their column types, which validation accepts as they are.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lifecycle.features.mapping import (
    CUSTOMER_COLUMNS,
    CustomerMapping,
    EventMapping,
    SourcesMapping,
)
from lifecycle.features.schema import DEFAULT_VOCABULARY, to_canonical_table
from lifecycle.features.validate import (
    Plausibility,
    SchemaError,
    ValidationResult,
    as_text,
    combine_results,
    parse_timestamps,
    validate_events,
)

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt", ".tsv")
COMPRESSION_SUFFIXES: tuple[str, ...] = (".gz", ".bz2", ".zip", ".xz", ".zst")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
DUCKDB_SUFFIXES: tuple[str, ...] = (".duckdb", ".ddb", ".db")
_SQLITE_MAGIC = b"SQLite format 3\x00"


class SourceError(ValueError):
    """A source that cannot be read, or a table it does not hold; the message names the source."""


def _is_url(source: str | Path) -> bool:
    """Tell a SQLAlchemy URL (``dialect://...``) from a path."""
    return isinstance(source, str) and "://" in source and not Path(source).exists()


def _redact(url: str) -> str:
    """Return the URL with any password hidden, for error messages."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("://", 1)[0] + "://..."


def _split_table(table: str) -> tuple[str | None, str]:
    """Split ``schema.table`` into its parts."""
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def _pick_table(table: str | None, available: Sequence[str], where: str) -> str:
    """Return the requested table, or the only one when none was named; else a clear error."""
    if table is None:
        if len(available) == 1:
            return available[0]
        raise SourceError(f"{where}: name a table (tables: {sorted(available)})")
    if table not in available:
        raise SourceError(f"{where}: no table {table!r} (tables: {sorted(available)})")
    return table


DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
"""Delimiters recognised when a file read with one gives a single column."""


def _other_delimiter(header: str, used: str) -> str | None:
    """Return the delimiter a one-column header is split by, if it holds one."""
    counts = {d: header.count(d) for d in DELIMITERS if d != used}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else None


def _decode_hint(path: Path, exc: UnicodeDecodeError, encoding: str) -> str:
    """Word a decoding error with the fix: the mapping's ``read.encoding``."""
    return (
        f"{path}: not valid {encoding} text (byte {exc.object[exc.start : exc.start + 1]!r} at "
        f"position {exc.start}); name the file's encoding in the mapping, e.g. "
        "`read: {encoding: latin-1}` (Windows exports: cp1252), and pass it with --mapping"
    )


def csv_options(path: Path, read_options: Mapping[str, Any]) -> dict[str, Any]:
    r"""Return the ``pandas.read_csv`` options that read a file's columns as raw text.

    Without a ``sep`` option, a file whose header reads as one column holding ``;``, a tab or
    ``|`` gets that delimiter; with an explicit ``sep``, such a file is an error naming the
    delimiter it seems to use. Only the header is read.

    Parameters
    ----------
    path
        A delimited text file (compressed too).
    read_options
        The mapping's ``read`` options; they win over the defaults.

    Returns
    -------
    dict
        Options for ``pandas.read_csv``.

    Raises
    ------
    SourceError
        When the header cannot be read or decoded, or the explicit delimiter is wrong.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("customer_id;event_ts;event_type\n1;2024-01-01;visit\n")
    >>> csv_options(path, {})["sep"]
    ';'
    """
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_filter": False}
    if path.suffix.lower() == ".tsv" or path.name.lower().endswith(".tsv.gz"):
        options["sep"] = "\t"
    options.update(read_options)
    given = "sep" in read_options or "delimiter" in read_options
    with csv_error_context(path, options):
        try:
            header = pd.read_csv(path, **(options | {"nrows": 0}))
        except pd.errors.EmptyDataError:
            return options
    if len(header.columns) == 1 and options.get("header", "infer") is not None:
        used = str(options.get("sep", options.get("delimiter", ",")))
        other = _other_delimiter(str(header.columns[0]), used)
        if other is not None and given:
            raise SourceError(
                f"{path}: reads as one column with sep {used!r}, but its header looks "
                f"delimited by {other!r}; set the mapping's `read: {{sep: {other!r}}}`"
            )
        if other is not None:
            options = {k: v for k, v in options.items() if k != "delimiter"} | {"sep": other}
    return options


@contextlib.contextmanager
def csv_error_context(path: Path, options: Mapping[str, Any]) -> Iterator[None]:
    """Turn reader errors into one-line :class:`SourceError` messages that name the fix."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise SourceError(_decode_hint(path, exc, str(options.get("encoding", "utf-8")))) from exc
    except SourceError:
        raise
    except (pd.errors.ParserError, OSError, EOFError, ValueError) as exc:
        raise SourceError(f"{path}: cannot be read as CSV: {exc}") from exc


def _read_csv(path: Path, read_options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a delimited text file with every column as raw text (see :func:`csv_options`)."""
    options = csv_options(path, read_options)
    with csv_error_context(path, options):
        try:
            return pd.read_csv(path, **options)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file, or every Parquet file under a folder, as one frame."""
    if path.is_dir() and not any(path.rglob("*.parquet")) and not any(path.rglob("*.pq")):
        raise SourceError(f"{path}: folder holds no .parquet files")
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise SourceError(f"{path}: cannot be read as Parquet: {exc}") from exc
    for col in frame.columns:
        # Hive partition keys arrive as categoricals; plain values are what the mapping expects.
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(frame[col].cat.categories.dtype)
    return frame


def _quote(identifier: str) -> str:
    """Quote one SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _read_duckdb(path: Path, table: str | None) -> pd.DataFrame:
    """Read one table of a DuckDB database file (opened read-only)."""
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot be opened as a DuckDB database: {exc}") from exc
    try:
        rows = con.sql(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database()"
        ).fetchall()
        available = [name if schema == "main" else f"{schema}.{name}" for schema, name in rows]
        chosen = _pick_table(table, available, str(path))
        schema, name = _split_table(chosen)
        qualified = _quote(name) if schema is None else f"{_quote(schema)}.{_quote(name)}"
        # The name was checked against the catalogue and is quoted.
        return con.sql(f"SELECT * FROM {qualified}").to_arrow_table().to_pandas()  # noqa: S608
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot read table {table!r}: {exc}") from exc
    finally:
        con.close()


def _read_sql(url: str, table: str | None) -> pd.DataFrame:
    """Read one table (or view) through SQLAlchemy."""
    import sqlalchemy as sa

    where = _redact(url)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise SourceError(f"{where}: not a usable database URL: {exc}") from exc
    try:
        schema, name = _split_table(table) if table is not None else (None, "")
        inspector = sa.inspect(engine)
        available = [
            *inspector.get_table_names(schema=schema),
            *inspector.get_view_names(schema=schema),
        ]
        if schema is not None:
            available = [f"{schema}.{t}" for t in available]
        chosen = _pick_table(table, available, where)
        schema, name = _split_table(chosen)
        reflected = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=engine)
        with engine.connect() as conn:
            return pd.read_sql(sa.select(reflected), conn)
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"{where}: cannot read table {table!r}: {exc}") from exc
    finally:
        engine.dispose()


def read_source(
    source: str | Path,
    *,
    table: str | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    r"""Read raw rows from a file, folder or database, without changing any value.

    Parameters
    ----------
    source
        CSV/TXT/TSV file (compressed too), Parquet file or folder, DuckDB file, or a SQLAlchemy
        URL such as ``"sqlite:///events.db"`` or ``"postgresql+psycopg://user@host/db"``.
    table
        Table to read from a database; may be omitted when the database holds exactly one.
        ``schema.table`` is accepted.
    read_options
        Extra ``pandas.read_csv`` options (``sep``, ``header``, ``names``, ...); ignored by
        Parquet and database sources.

    Returns
    -------
    pandas.DataFrame
        CSV: every column as text, blanks as ``""``. Other sources: their own column types.

    Raises
    ------
    FileNotFoundError
        When a path does not exist.
    SourceError
        When the source cannot be read or lacks the table; the message names the source.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("customer_id,event_ts,event_type\n007,2024-01-01,visit\n")
    >>> read_source(path)["customer_id"].tolist()
    ['007']
    """
    if _is_url(source):
        return _read_sql(str(source), table)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_parquet(path)
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if last in DUCKDB_SUFFIXES:
        with path.open("rb") as handle:
            is_sqlite = handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
        if is_sqlite:
            return _read_sql(f"sqlite:///{path.resolve()}", table)
        return _read_duckdb(path, table)
    stem_suffix = suffixes[-2] if len(suffixes) > 1 and last in COMPRESSION_SUFFIXES else last
    if stem_suffix in CSV_SUFFIXES:
        return _read_csv(path, read_options or {})
    raise SourceError(
        f"{path}: unsupported source type; use CSV/TXT/TSV (optionally compressed), Parquet, "
        "a DuckDB file or a SQLAlchemy URL"
    )


def load_events(
    source: str | Path | None,
    *,
    mapping: EventMapping | SourcesMapping | None = None,
    table: str | None = None,
    vocabulary: Sequence[str] = DEFAULT_VOCABULARY,
    now: pd.Timestamp | None = None,
    plausibility: Plausibility | None = None,
) -> ValidationResult:
    r"""Read a source (or every source of a mapping) and validate it into canonical events.

    Parameters
    ----------
    source
        Anything :func:`read_source` accepts; None when ``mapping`` names its own sources.
    mapping
        Column mapping (its ``read`` options go to the CSV reader); None for canonical names.
        A :class:`~lifecycle.features.mapping.SourcesMapping` reads and validates each of its
        sources with its own mapping and combines them
        (:func:`~lifecycle.features.validate.combine_results`): quarantined rows keep their
        ``source``, and the result's ``sources`` holds each source's counts.
    table
        Database table, when the source is a database (a sources mapping names its own).
    vocabulary
        Allowed event types.
    now
        Cut-off for future timestamps; default: the current UTC time.
    plausibility
        Earliest date and revenue roles
        (:meth:`~lifecycle.features.validate.Plausibility.from_config`); default: those of the
        default lifecycle config.

    Returns
    -------
    ValidationResult
        Events, quarantine and reconciled counts.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("customer_id,event_ts,event_type\n1,2024-01-01,visit\n,x,visit\n")
    >>> result = load_events(path)
    >>> result.rows_in, result.rows_accepted, result.rows_quarantined
    (2, 1, 1)
    """
    if isinstance(mapping, SourcesMapping):
        if source is not None or table is not None:
            raise ValueError(
                "the mapping names its own sources (sources:); pass no other source or table"
            )
        results = {}
        for name, spec in mapping.sources.items():
            raw = read_source(spec.path, table=spec.table, read_options=spec.read)
            try:
                results[name] = validate_events(
                    raw, mapping=spec, vocabulary=vocabulary, now=now, plausibility=plausibility
                )
            except SchemaError as exc:
                problems = [f"source {name!r} ({spec.path}): {p}" for p in exc.problems]
                raise SchemaError(problems, exc.source_columns) from exc
        return combine_results(results)
    if source is None:
        raise ValueError("no source given: name a file or URL, or use a mapping with sources:")
    raw = read_source(source, table=table, read_options=mapping.read if mapping else None)
    return validate_events(
        raw, mapping=mapping, vocabulary=vocabulary, now=now, plausibility=plausibility
    )


def load_customers(
    source: str | Path,
    *,
    mapping: CustomerMapping | None = None,
    table: str | None = None,
) -> pd.DataFrame:
    r"""Read the optional customer table: customer_id, acquisition_channel, country, signup_ts.

    Other columns are kept after the canonical ones. Missing optional columns are added as
    null. Unlike events, customer rows are not quarantined: a blank or repeated customer_id or
    an unparsable signup_ts raises, naming the first rows concerned.

    Parameters
    ----------
    source
        Anything :func:`read_source` accepts.
    mapping
        Canonical name -> source column, zone and format of ``signup_ts``, CSV options.
    table
        Database table, when the source is a database.

    Returns
    -------
    pandas.DataFrame
        One row per customer, sorted by customer_id; ``signup_ts`` is ``datetime64[us, UTC]``.

    Raises
    ------
    SchemaError
        When there is no customer_id column.
    ValueError
        When ids are blank or repeated, or a signup_ts cannot be parsed.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "customers.csv"
    >>> _ = path.write_text("id,country\n7,UK\n")
    >>> customers = load_customers(path, mapping=CustomerMapping(columns={"customer_id": "id"}))
    >>> customers.loc[0, ["customer_id", "country"]].tolist()
    ['7', 'UK']
    """
    mapping = mapping if mapping is not None else CustomerMapping()
    raw = read_source(source, table=table, read_options=mapping.read).reset_index(drop=True)
    raw.columns = pd.Index([str(c) for c in raw.columns])
    missing = [
        f"{c}: mapped to column {s!r}, which the source lacks"
        for c, s in mapping.columns.items()
        if s not in raw.columns
    ]
    if "customer_id" not in mapping.columns and "customer_id" not in raw.columns:
        missing.append("customer_id: required, but no source column (map it: columns.customer_id)")
    if missing:
        raise SchemaError(missing, list(raw.columns))
    used = {mapping.columns.get(c, c) for c in CUSTOMER_COLUMNS}
    out = pd.DataFrame(index=raw.index)
    for col in CUSTOMER_COLUMNS:
        src = mapping.columns.get(col, col)
        if col == "signup_ts":
            if src in raw.columns:
                ts, _, bad = parse_timestamps(
                    raw[src], timezone=mapping.timezone, timestamp_format=mapping.timestamp_format
                )
                if bad.any():
                    rows = raw.index[bad][:5].tolist()
                    raise ValueError(f"{source}: unparsable signup_ts on rows {rows} (0-based)")
                out[col] = ts
            else:
                out[col] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
        else:
            empty = pd.Series(np.nan, index=raw.index, dtype="str")
            out[col] = as_text(raw[src]) if src in raw.columns else empty
    blank = out["customer_id"].isna()
    repeated = out["customer_id"].duplicated() & ~blank
    for label, mask in (("blank customer_id", blank), ("repeated customer_id", repeated)):
        if mask.any():
            rows = raw.index[mask.to_numpy()][:5].tolist()
            raise ValueError(f"{source}: {int(mask.sum())} rows with {label}, e.g. rows {rows}")
    extras = raw[[c for c in raw.columns if c not in used]]
    customers = pd.concat([out, extras], axis=1)
    return customers.sort_values("customer_id", kind="stable").reset_index(drop=True)


def replace_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write a file through ``write`` to a temporary name beside it, then rename it into place.

    The temporary file (``.NAME.PID.part``) lives in the same folder, so the rename is atomic:
    a reader, or a command killed at any moment, sees the old file or the new one, never half a
    file. On an error the temporary file is removed and the old file is left as it was.

    Parameters
    ----------
    path
        The file to write; its folder must exist.
    write
        Called with the temporary path; writes the whole content there.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> replace_atomically(target, lambda temp: temp.write_text("new")).read_text()
    'new'
    """
    out = Path(path)
    _remove_stale_parts(out)
    temp = _temp_name(out)
    try:
        write(temp)
        temp.replace(out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return out


def replace_folder_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Fill a folder through ``write`` under a temporary name beside it, then rename it into place.

    Like :func:`replace_atomically` for a folder of files (a training report and its plots): a
    reader, or a command killed at any moment, finds the whole folder or none of it. An existing
    folder at ``path`` is moved aside, replaced, then deleted.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "report"
    >>> done = replace_folder_atomically(target, lambda d: (d / "a.txt").write_text("x"))
    >>> sorted(p.name for p in done.iterdir())
    ['a.txt']
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(out)
    temp = _temp_name(out)
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    try:
        temp.mkdir()
        write(temp)
        if out.exists():
            out.rename(old)
        temp.rename(out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def _temp_name(path: Path) -> Path:
    """Return the temporary name :func:`replace_atomically` writes ``path`` under."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _remove_stale_parts(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers that were killed (their process is gone).

    A killed writer leaves ``.NAME.PID.part`` beside the target; the next write of the same
    target removes it. A part whose process still runs (a concurrent writer) is left alone.
    """
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        pid = part.name[len(path.name) + 2 : -len(".part")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def write_events(events: pd.DataFrame, path: str | Path) -> Path:
    """Write canonical events to Parquet with :data:`lifecycle.features.schema.EVENT_SCHEMA`.

    Parameters
    ----------
    events
        Canonical event frame.
    path
        Output file; parent folders are created.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = to_canonical_table(events)
    return replace_atomically(out, lambda temp: pq.write_table(table, temp))


def write_validation(result: ValidationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write events, quarantine (CSV and Parquet) and a JSON summary into one folder.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.

    Parameters
    ----------
    result
        Output of :func:`load_events` or :func:`lifecycle.features.validate.validate_events`.
    out_dir
        Folder, created when missing.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``events``, ``quarantine_csv``, ``quarantine_parquet``, ``summary``.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "events": folder / "events.parquet",
        "quarantine_csv": folder / "quarantine.csv",
        "quarantine_parquet": folder / "quarantine.parquet",
        "summary": folder / "summary.json",
    }
    table = to_canonical_table(result.events)
    quarantine = result.quarantine
    summary = json.dumps(result.summary(), indent=2) + "\n"
    writers: dict[str, Callable[[Path], object]] = {
        "events": lambda temp: pq.write_table(table, temp),
        "quarantine_csv": lambda temp: quarantine.to_csv(temp, index=False),
        "quarantine_parquet": lambda temp: quarantine.to_parquet(temp, index=False),
        "summary": lambda temp: temp.write_text(summary, encoding="utf-8"),
    }
    replace_together(paths, writers)
    return paths


def replace_together(
    paths: Mapping[str, Path], writers: Mapping[str, Callable[[Path], object]]
) -> None:
    """Write every file to its temporary name first, then rename them all, ``summary`` last.

    The slow part (writing) happens while the old files are all still in place; the old
    summary is removed before the quick renames, so a kill between two renames leaves no
    summary claiming success for a mixed set.
    """
    for path in paths.values():
        _remove_stale_parts(path)
    temps = {key: _temp_name(path) for key, path in paths.items()}
    try:
        for key, write in writers.items():
            write(temps[key])
        paths["summary"].unlink(missing_ok=True)
        for key in [k for k in paths if k != "summary"] + ["summary"]:
            temps[key].replace(paths[key])
    except BaseException:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        raise
