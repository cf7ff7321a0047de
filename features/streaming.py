"""Validate a CSV file of any size within a memory cap, straight into an output folder.

The file is read in chunks and never held whole:

1. **Partition.** Each chunk's rows go to one of ``P`` Parquet part files on disk, chosen by a
   hash of the duplicate key (every column by default), each row keeping its position in the
   file. Rows that could be duplicates of each other land in the same part.
2. **Validate.** Each part is validated on its own by
   :func:`lifecycle.features.validate.validate_events`, given the rows' positions: every rule
   is per row except duplicates, and those never cross parts, so the result is the in-memory
   one. ``P`` is chosen so that one part fits the cap.
3. **Sort and write.** DuckDB, under the same cap (spilling to disk beyond it), sorts the
   accepted events into canonical order and the quarantine by source row; both are streamed
   into temporary files beside the outputs, which are renamed into place with ``summary.json``
   last (:func:`lifecycle.features.io.replace_atomically`).

Order lines (``transactions``) and several ``sources`` are merged across rows and still
validate in memory (:func:`lifecycle.features.io.load_events`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle.features.io import (
    COMPRESSION_SUFFIXES,
    CSV_SUFFIXES,
    csv_error_context,
    csv_options,
    replace_together,
)
from lifecycle.features.mapping import EventMapping
from lifecycle.features.schema import DEFAULT_VOCABULARY, EVENT_SCHEMA
from lifecycle.features.validate import Plausibility, ValidationResult, validate_events

DEFAULT_MEMORY_LIMIT = "2GB"
"""Memory cap of ``lifecycle validate`` unless ``--memory-limit`` or
``LIFECYCLE_MEMORY_LIMIT`` gives another."""

EXPANSION = 12.0
"""Peak bytes of memory per byte of CSV while one part is validated in memory (measured about
6.6 on a 540 MB file, with room for wide ids and many reasons)."""

BASELINE_BYTES = 450 * 2**20
"""Memory the process holds before any data (Python, pandas, pyarrow, DuckDB)."""

CHUNK_ROWS = 200_000
"""Rows read per chunk in the partition pass."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


class OutOfMemory(RuntimeError):
    """Validation needed more memory than its cap; the message says what to change."""


def parse_size(text: str) -> int:
    """Return the bytes of a size such as ``"2GB"``, ``"500MB"`` or ``"1.5GiB"``.

    Parameters
    ----------
    text
        A number with an optional unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB,
        TiB (powers of 1024).

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    ValueError
        When the text is not a size.

    Examples
    --------
    >>> parse_size("2GB"), parse_size("1GiB")
    (2000000000, 1073741824)
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"memory limit {text!r} is not a size like '2GB' or '500MB'")
    number, unit = float(match.group(1)), match.group(2).upper()
    prefix = unit[:1] if unit[:1] in "KMGT" and unit else ""
    factor = 1024 ** ("KMGT".index(prefix) + 1) if "I" in unit and prefix else _UNITS[prefix]
    return int(number * factor)


def can_stream(source: str | Path | None, mapping: object) -> bool:
    """Tell whether a source is one CSV file whose mapping merges no rows (no transactions).

    Examples
    --------
    >>> can_stream("events.csv", None), can_stream("events.parquet", None)
    (True, False)
    """
    if source is None or (mapping is not None and not isinstance(mapping, EventMapping)):
        return False
    if isinstance(mapping, EventMapping) and mapping.transactions is not None:
        return False
    suffixes = [s.lower() for s in Path(str(source)).suffixes]
    if not suffixes or "://" in str(source):
        return False
    last = suffixes[-1]
    stem = suffixes[-2] if len(suffixes) > 1 and last in COMPRESSION_SUFFIXES else last
    return stem in CSV_SUFFIXES


def _parts_for(path: Path, limit: int) -> int:
    """Return how many parts keep one part's validation within ``limit`` bytes."""
    size = path.stat().st_size
    if path.suffix.lower() in COMPRESSION_SUFFIXES:
        size *= 6  # typical text compression
    budget = max(limit - BASELINE_BYTES, limit // 4)
    return max(1, math.ceil(size * EXPANSION / budget))


def _chunks(path: Path, options: dict[str, Any]) -> Iterator[pd.DataFrame]:
    """Yield the file's rows as text frames of :data:`CHUNK_ROWS` rows."""
    with csv_error_context(path, options):
        try:
            reader = pd.read_csv(path, chunksize=CHUNK_ROWS, **options)
        except pd.errors.EmptyDataError:
            return
        with reader:
            yield from reader


def _partition(
    path: Path, options: dict[str, Any], key: Sequence[str] | None, parts: int, folder: Path
) -> tuple[list[str], int]:
    """Write the rows into ``parts`` Parquet files by hash of the key; return columns, rows."""
    writers: dict[int, pq.ParquetWriter] = {}
    columns: list[str] = []
    schema: pa.Schema | None = None
    offset = 0
    try:
        for chunk in _chunks(path, options):
            chunk.columns = pd.Index([str(c) for c in chunk.columns])
            if schema is None:
                columns = list(chunk.columns)
                schema = pa.schema(
                    [*(pa.field(c, pa.string()) for c in columns), pa.field("__row", pa.int64())]
                )
            rows = np.arange(offset, offset + len(chunk), dtype=np.int64)
            offset += len(chunk)
            if parts == 1:
                part = np.zeros(len(chunk), dtype=np.int64)
            else:
                cols = list(key) if key is not None else columns
                hashed = pd.util.hash_pandas_object(chunk[cols], index=False).to_numpy()
                part = (hashed % np.uint64(parts)).astype(np.int64)
            chunk["__row"] = rows
            for p in np.unique(part):
                table = pa.Table.from_pandas(chunk[part == p], schema=schema, preserve_index=False)
                if p not in writers:
                    writers[p] = pq.ParquetWriter(folder / f"raw-{p:05d}.parquet", schema)
                writers[p].write_table(table)
    finally:
        for writer in writers.values():
            writer.close()
    return columns, offset


def _sql_path(path: Path) -> str:
    """Quote a path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _parts(files: Sequence[Path]) -> str:
    """Return the DuckDB table function reading the given Parquet files."""
    return f"read_parquet([{', '.join(_sql_path(p) for p in files)}])"


def validate_csv_to_folder(
    source: str | Path,
    out_dir: str | Path,
    *,
    mapping: EventMapping | None = None,
    vocabulary: Sequence[str] = DEFAULT_VOCABULARY,
    now: pd.Timestamp | None = None,
    plausibility: Plausibility | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> tuple[ValidationResult, dict[str, Path]]:
    r"""Validate one CSV file within a memory cap and write the folder ``validate`` writes.

    Parameters
    ----------
    source
        A CSV/TXT/TSV file, optionally compressed.
    out_dir
        Folder for events.parquet, quarantine.csv, quarantine.parquet and summary.json.
    mapping
        Column mapping without ``transactions``; None for canonical names.
    vocabulary
        Allowed event types.
    now
        Cut-off for future timestamps; default: the current UTC time (fixed for the whole file).
    plausibility
        Earliest date and revenue roles.
    memory_limit
        Cap such as ``"2GB"``: parts are sized to it and DuckDB spills to disk beyond it.

    Returns
    -------
    tuple of ValidationResult and dict of str to pathlib.Path
        The counts and summary (``events`` and ``quarantine`` are left empty: they are on
        disk), and the written paths as :func:`lifecycle.features.io.write_validation` returns.

    Raises
    ------
    OutOfMemory
        When the work did not fit the cap; one line naming the cap.
    SourceError, SchemaError
        When the file cannot be read or does not fit the mapping.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "e.csv").write_text("customer_id,event_ts,event_type\n1,2024-01-01,visit\n")
    >>> result, paths = validate_csv_to_folder(folder / "e.csv", folder / "out")
    >>> result.rows_accepted, sorted(paths)
    (1, ['events', 'quarantine_csv', 'quarantine_parquet', 'summary'])
    """
    import duckdb

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    limit = parse_size(memory_limit)
    mapping = mapping if mapping is not None else EventMapping()
    options = csv_options(path, mapping.read)
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    with csv_error_context(path, options):
        try:
            columns = [str(c) for c in pd.read_csv(path, **(options | {"nrows": 0})).columns]
        except pd.errors.EmptyDataError:
            columns = []
    template = pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    empty = validate_events(  # checks the columns against the mapping before any work
        template, mapping=mapping, vocabulary=vocabulary, now=stamp, plausibility=plausibility
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".validate-", dir=out) as work:
            folder = Path(work)
            parts = _parts_for(path, limit)
            _, rows_in = _partition(path, options, mapping.duplicate_key, parts, folder)
            result = _validate_parts(folder, empty, mapping, vocabulary, stamp, plausibility)
            result = dataclasses.replace(result, rows_in=rows_in)
            return _write_outputs(folder, out, result, empty, limit, duckdb)
    except (MemoryError, pa.ArrowMemoryError, duckdb.OutOfMemoryException) as exc:
        raise OutOfMemory(
            f"validating {path} needed more than the memory limit {memory_limit}: "
            "raise --memory-limit (or LIFECYCLE_MEMORY_LIMIT), or free memory on this machine"
        ) from exc


def _validate_parts(
    folder: Path,
    empty: ValidationResult,
    mapping: EventMapping,
    vocabulary: Sequence[str],
    now: pd.Timestamp,
    plausibility: Plausibility | None,
) -> ValidationResult:
    """Validate every raw part; write its events and quarantine beside it; add up the counts."""
    accepted = quarantined = events_out = 0
    reasons: dict[str, int] = {}
    for raw_file in sorted(folder.glob("raw-*.parquet")):
        raw = pq.read_table(raw_file).to_pandas()
        raw_file.unlink()
        positions = raw.pop("__row").to_numpy()
        part = validate_events(
            raw,
            mapping=mapping,
            vocabulary=vocabulary,
            now=now,
            plausibility=plausibility,
            positions=positions,
        )
        del raw
        name = raw_file.stem.removeprefix("raw-")
        if len(part.events):
            pq.write_table(
                pa.Table.from_pandas(part.events, schema=EVENT_SCHEMA, preserve_index=False),
                folder / f"events-{name}.parquet",
            )
        if len(part.quarantine):
            part.quarantine.to_parquet(folder / f"quarantine-{name}.parquet", index=False)
        accepted += part.rows_accepted
        quarantined += part.rows_quarantined
        events_out += part.events_out
        for reason, count in part.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    return ValidationResult(
        events=empty.events,
        quarantine=empty.quarantine,
        rows_in=accepted + quarantined,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        events_out=events_out,
        reasons=reasons,
        mode="events",
        revenue_source=empty.revenue_source,
        notes=empty.notes,
    )


_EVENT_ORDER = ", ".join(
    f"{c} ASC NULLS LAST"
    for c in (
        "customer_id",
        "event_ts",
        "event_type",
        "revenue",
        "currency",
        "channel",
        "campaign_id",
    )
)


def _write_outputs(
    folder: Path,
    out: Path,
    result: ValidationResult,
    empty: ValidationResult,
    limit: int,
    duckdb: Any,
) -> tuple[ValidationResult, dict[str, Path]]:
    """Sort the parts with DuckDB under the cap and stream them into the four outputs."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        budget = max(limit - BASELINE_BYTES, limit // 4) // 2  # DuckDB, beside Arrow batches
        con.execute(f"SET memory_limit = '{budget // 2**20}MiB'")
        con.execute(f"SET temp_directory = {_sql_path(folder / 'spill')}")
        con.execute("SET preserve_insertion_order = false")
        events_glob = sorted(folder.glob("events-*.parquet"))
        quarantine_glob = sorted(folder.glob("quarantine-*.parquet"))
        facts = _facts(con, events_glob)
        summary_result = dataclasses.replace(result, event_facts=facts)

        def events(temp: Path) -> None:
            query = f"SELECT * FROM {_parts(events_glob)} ORDER BY {_EVENT_ORDER}"  # noqa: S608
            _stream(con, query if events_glob else None, EVENT_SCHEMA, temp, None)

        quarantine_schema = pa.Table.from_pandas(empty.quarantine, preserve_index=False).schema
        quarantine_query: str | None = None
        if quarantine_glob:
            source = _parts(quarantine_glob)
            quarantine_query = f"SELECT * FROM {source} ORDER BY source_row"  # noqa: S608

        def quarantine_parquet(temp: Path) -> None:
            _stream(con, quarantine_query, quarantine_schema, temp, None)

        def quarantine_csv(temp: Path) -> None:
            _stream(con, quarantine_query, quarantine_schema, None, temp)

        summary = json.dumps(summary_result.summary(), indent=2) + "\n"
        paths = {
            "events": out / "events.parquet",
            "quarantine_csv": out / "quarantine.csv",
            "quarantine_parquet": out / "quarantine.parquet",
            "summary": out / "summary.json",
        }
        writers: dict[str, Callable[[Path], object]] = {
            "events": events,
            "quarantine_csv": quarantine_csv,
            "quarantine_parquet": quarantine_parquet,
            "summary": lambda temp: temp.write_text(summary, encoding="utf-8"),
        }
        replace_together(paths, writers)
        return summary_result, paths
    finally:
        con.close()


def _facts(con: Any, files: Sequence[Path]) -> dict[str, Any]:
    """Return :func:`lifecycle.features.validate.event_facts` of the events parts, with DuckDB."""
    if not files:
        return {
            "customers": 0,
            "event_types": {},
            "first_event_ts": None,
            "last_event_ts": None,
            "revenue_total": None,
        }
    source = _parts(files)
    columns = "count(DISTINCT customer_id), epoch_us(min(event_ts)), epoch_us(max(event_ts)), "
    query = f"SELECT {columns} sum(revenue) FROM {source}"  # noqa: S608 - our own temp paths
    customers, first, last, total = con.execute(query).fetchone()
    types = con.execute(
        f"SELECT event_type, count(*) FROM {source} GROUP BY 1 ORDER BY 1"  # noqa: S608
    ).fetchall()
    return {
        "customers": int(customers),
        "event_types": {str(k): int(v) for k, v in types},
        "first_event_ts": pd.Timestamp(first, unit="us", tz="UTC").isoformat(),
        "last_event_ts": pd.Timestamp(last, unit="us", tz="UTC").isoformat(),
        "revenue_total": None if total is None else float(total),
    }


def _stream(
    con: Any, query: str | None, schema: pa.Schema, parquet: Path | None, csv: Path | None
) -> None:
    """Stream a query's rows (or none) into a Parquet file or a CSV file, batch by batch."""
    writer = pq.ParquetWriter(parquet, schema) if parquet is not None else None
    try:
        header = True
        if csv is not None:
            csv.write_text("", encoding="utf-8")
        batches = con.sql(query).to_arrow_reader(100_000) if query is not None else []
        wrote = False
        for batch in batches:
            table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
            wrote = True
            if writer is not None:
                writer.write_table(table)
            if csv is not None:
                table.to_pandas().to_csv(csv, mode="a", header=header, index=False)
                header = False
        if csv is not None and not wrote:
            schema.empty_table().to_pandas().to_csv(csv, index=False)
        if writer is not None and not wrote:
            writer.write_table(schema.empty_table())
    finally:
        if writer is not None:
            writer.close()
