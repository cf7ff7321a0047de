"""Validate event logs of any size within a memory cap, straight into an output folder.

CSV files (compressed too) and Parquet files or folders are read in chunks and never held
whole, whether they hold events or order lines (``transactions``), alone or as several
``sources`` of one mapping:

1. **Partition.** Each chunk's rows go to one of ``P`` Parquet part files on disk, chosen by a
   hash, each row keeping its position in its source. Every row that another row can affect
   lands in the same part (:func:`_partition_key`): rows that can be duplicates of each other
   (same duplicate key), and, for order lines, the lines merged into one event (same customer,
   and order or local day). Parquet columns keep the types the in-memory reader gives them.
2. **Validate.** Each part is validated on its own by
   :func:`lifecycle.features.validate.validate_events`, given the rows' positions: every other
   rule is per row, so the result is the in-memory one. ``P`` is chosen so that one part fits
   the cap.
3. **Sort and write.** DuckDB, under the same cap (spilling to disk beyond it), sorts the
   accepted events of every source into canonical order and the quarantine by source and row
   (with several sources, a leading ``source`` column and the union of their columns, as
   :func:`lifecycle.features.validate.combine_results` gives); both are streamed into
   temporary files beside the outputs, which are renamed into place with ``summary.json``
   last (:func:`lifecycle.features.io.replace_together`).

Two cases are not bounded by the cap. Database sources (a SQLAlchemy URL, a DuckDB or SQLite
file) are read and validated whole, in memory. Order lines whose custom ``duplicate_key`` leaves
out both the customer column and (with ``merge: order``) the order column cannot be split so
that duplicates and merged lines stay together, so they are validated as one part.

One known difference from the in-memory path: without a ``timestamp_format``, the format
guessed for non-ISO timestamps comes from the first such value of each part, not of the file,
so a file mixing ``13/02/2024`` and ``01/02/2024`` may read the latter differently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lifecycle.features.io import (
    COMPRESSION_SUFFIXES,
    CSV_SUFFIXES,
    DUCKDB_SUFFIXES,
    PARQUET_SUFFIXES,
    SourceError,
    csv_error_context,
    csv_options,
    read_source,
    replace_together,
)
from lifecycle.features.mapping import EventMapping, SourcesMapping
from lifecycle.features.schema import DEFAULT_VOCABULARY, EVENT_SCHEMA
from lifecycle.features.validate import (
    Plausibility,
    SchemaError,
    ValidationResult,
    as_text,
    combine_results,
    validate_events,
)

DEFAULT_MEMORY_LIMIT = "2GB"
"""Memory cap of ``lifecycle validate`` unless ``--memory-limit`` or
``LIFECYCLE_MEMORY_LIMIT`` gives another."""

EXPANSION = 12.0
"""Peak bytes of memory per byte of CSV (or of decoded Parquet) while one part is
validated in memory (measured about 6.6 on a 540 MB CSV file, with room for wide ids and many
reasons)."""

BASELINE_BYTES = 450 * 2**20
"""Memory the process holds before any data (Python, pandas, pyarrow, DuckDB)."""

CHUNK_ROWS = 200_000
"""Rows read per chunk in the partition pass."""

_ROW = "__row"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_MERGE_NOTE = re.compile(r"^0 accepted lines merged into 0 events")

SourceKind = Literal["csv", "parquet", "database"]


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


def source_kind(source: str | Path) -> SourceKind:
    """Tell how a source is read: a CSV or Parquet file (streamed), or a database (whole).

    Anything :func:`lifecycle.features.io.read_source` does not read as CSV or Parquet counts
    as a database; reading it raises the reader's own error for what it is not.

    Examples
    --------
    >>> source_kind("e.csv.gz"), source_kind("e.parquet"), source_kind("sqlite:///e.db")
    ('csv', 'parquet', 'database')
    """
    text = str(source)
    path = Path(text)
    if "://" in text and not path.exists():
        return "database"
    if path.is_dir():
        return "parquet"
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in PARQUET_SUFFIXES:
        return "parquet"
    if last in DUCKDB_SUFFIXES:
        return "database"
    stem = suffixes[-2] if len(suffixes) > 1 and last in COMPRESSION_SUFFIXES else last
    return "csv" if stem in CSV_SUFFIXES else "database"


def streams(source: str | Path | None, mapping: object = None) -> bool:
    """Tell whether :func:`validate_to_folder` keeps a source (or every source) within the cap.

    True when every source is a CSV or Parquet file; database sources are validated whole.

    Examples
    --------
    >>> streams("events.parquet"), streams("postgresql://host/db")
    (True, False)
    """
    if isinstance(mapping, SourcesMapping):
        return all(source_kind(spec.path) != "database" for spec in mapping.sources.values())
    return source is not None and source_kind(source) != "database"


@dataclasses.dataclass(frozen=True)
class _Source:
    """One source as the streamed path reads it: where, how and with which mapping."""

    name: str | None
    path: str | Path
    table: str | None
    mapping: EventMapping
    kind: SourceKind


@dataclasses.dataclass(frozen=True)
class _Rules:
    """What every part is validated against: the vocabulary, the cut-off and plausibility."""

    vocabulary: tuple[str, ...]
    now: pd.Timestamp
    plausibility: Plausibility | None

    def validate(
        self, raw: pd.DataFrame, src: _Source, positions: np.ndarray | None = None
    ) -> ValidationResult:
        """Validate rows of a source, naming the source in schema errors as ``load_events``."""
        try:
            return validate_events(
                raw,
                mapping=src.mapping,
                vocabulary=self.vocabulary,
                now=self.now,
                plausibility=self.plausibility,
                positions=positions,
            )
        except SchemaError as exc:
            if src.name is None:
                raise
            problems = [f"source {src.name!r} ({src.path}): {p}" for p in exc.problems]
            raise SchemaError(problems, exc.source_columns) from exc


@dataclasses.dataclass
class _Typing:
    """Facts about whole Parquet columns that decide the pandas values of every part.

    pandas gives an integer column holding a null floats, a boolean one objects, and writes a
    float column as integers (``as_text``) only when all of its values are integral; a part
    must see the dtypes and texts of the whole column, not of its own rows.
    """

    text_columns: frozenset[str] = frozenset()
    nulls: set[str] = dataclasses.field(default_factory=set)
    not_integral: set[str] = dataclasses.field(default_factory=set)

    def observe(self, table: pa.Table) -> None:
        """Note the nulls and non-integral numbers of one chunk."""
        for field in table.schema:
            kind = field.type
            column = table.column(field.name)
            if (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and column.null_count:
                self.nulls.add(field.name)
            numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
            if field.name in self.text_columns and numeric:
                values = column.to_numpy(zero_copy_only=False).astype(float)
                finite = values[~np.isnan(values)]
                integral = (
                    np.isfinite(finite).all()
                    and (np.mod(finite, 1) == 0).all()
                    and (np.abs(finite) < 2**53).all()
                )
                if not integral:
                    self.not_integral.add(field.name)

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Give a part's columns the dtypes (non-integral numbers: the texts) of the whole."""
        for col in frame.columns:
            kind = frame[col].dtype.kind if isinstance(frame[col].dtype, np.dtype) else ""
            if col in self.nulls and kind == "b":  # numpy only: pandas' own dtypes hold nulls
                frame[col] = frame[col].astype(object)
            elif col in self.nulls and kind in ("i", "u"):
                frame[col] = frame[col].astype("float64")
            if col in self.not_integral and pd.api.types.is_float_dtype(frame[col].dtype):
                frame[col] = frame[col].astype("str")
        return frame


def _sources(
    source: str | Path | None, mapping: EventMapping | SourcesMapping | None, table: str | None
) -> list[_Source]:
    """Return the sources to validate, as ``load_events`` reads them."""
    if isinstance(mapping, SourcesMapping):
        if source is not None or table is not None:
            raise ValueError(
                "the mapping names its own sources (sources:); pass no other source or table"
            )
        return [
            _Source(name, spec.path, spec.table, spec, source_kind(spec.path))
            for name, spec in mapping.sources.items()
        ]
    if source is None:
        raise ValueError("no source given: name a file or URL, or use a mapping with sources:")
    chosen = mapping if mapping is not None else EventMapping()
    return [_Source(None, source, table, chosen, source_kind(source))]


def _parts_for(path: Path, limit: int) -> int:
    """Return how many parts keep one part's validation within ``limit`` bytes."""
    if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES:
        size = _parquet_bytes(path)
    else:
        size = path.stat().st_size
        if path.suffix.lower() in COMPRESSION_SUFFIXES:
            size *= 6  # typical text compression
    budget = max(limit - BASELINE_BYTES, limit // 4)
    return max(1, math.ceil(size * EXPANSION / budget))


def _parquet_bytes(path: Path) -> int:
    """Return the bytes of a Parquet file or folder once decoded (about those of its CSV).

    Parquet compresses and encodes values far below their size in memory, so the size is its
    row count times the decoded bytes of a row in the first rows.
    """
    with _parquet_errors(path):
        dataset = _dataset(path)
        for batch in dataset.to_batches(batch_size=10_000):
            if batch.num_rows:
                return math.ceil(dataset.count_rows() * batch.nbytes / batch.num_rows)
    return 0


def _dataset(path: Path) -> ds.Dataset:
    """Return the dataset ``pyarrow.parquet.read_table`` reads: hive keys as dictionaries."""
    partitioning = ds.HivePartitioning.discover(infer_dictionary=True)
    return ds.dataset(path, format="parquet", partitioning=partitioning)


@contextlib.contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    """Word Parquet reader errors as ``read_source`` does."""
    try:
        yield
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise SourceError(f"{path}: cannot be read as Parquet: {exc}") from exc


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn categoricals (hive partition keys) into plain values, as ``read_source`` does."""
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(frame[col].cat.categories.dtype)
    return frame


def _template(src: _Source, path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return a source's columns as zero rows of the dtypes validation sees, and CSV options."""
    if src.kind == "csv":
        options = csv_options(path, src.mapping.read)
        with csv_error_context(path, options):
            try:
                columns = [str(c) for c in pd.read_csv(path, **(options | {"nrows": 0})).columns]
            except pd.errors.EmptyDataError:
                columns = []
        return pd.DataFrame({c: pd.Series(dtype="str") for c in columns}), options
    if path.is_dir() and not any(path.rglob("*.parquet")) and not any(path.rglob("*.pq")):
        raise SourceError(f"{path}: folder holds no .parquet files")
    with _parquet_errors(path):
        schema = _dataset(path).schema
    return _plain(schema.empty_table().to_pandas()), {}


def _chunks(src: _Source, path: Path, options: Mapping[str, Any]) -> Iterator[pa.Table]:
    """Yield the source's rows as Arrow tables of :data:`CHUNK_ROWS` rows (CSV: all text)."""
    if src.kind == "parquet":
        with _parquet_errors(path):
            batches = _dataset(path).to_batches(batch_size=CHUNK_ROWS, use_threads=False)
            for batch in batches:
                yield pa.Table.from_batches([batch])
        return
    with csv_error_context(path, options):
        try:
            reader = pd.read_csv(path, chunksize=CHUNK_ROWS, **options)
        except pd.errors.EmptyDataError:
            return
        with reader:
            for chunk in reader:
                chunk.columns = pd.Index([str(c) for c in chunk.columns])
                schema = pa.schema([pa.field(c, pa.string()) for c in chunk.columns])
                yield pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)


def _partition_key(mapping: EventMapping, columns: Sequence[str]) -> tuple[list[str], bool] | None:
    """Return the columns whose hash picks a row's part, and whether they are hashed as ids.

    Rows with the same duplicate key must share a part, and so must order lines merged into
    one event: the same customer id and order id (``merge: order``) or customer and local day
    (``merge: day``), ids compared as validation reads them (stripped text). Hashing one id
    column, as text, serves both when that column is part of the duplicate key (raw equal
    values are equal as text). None: no column serves, so the rows make one part.
    """
    tx = mapping.transactions
    key = list(mapping.duplicate_key) if mapping.duplicate_key is not None else list(columns)
    if tx is None or tx.merge == "none":
        return key, False
    customer = mapping.columns.get("customer_id", "customer_id")
    candidates = [customer, *([tx.order_id_col] if tx.merge == "order" else [])]
    for column in candidates:
        if column is not None and (mapping.duplicates == "keep" or column in key):
            return [column], True
    return None


def _stable(values: pd.Series, *, as_id: bool) -> pd.Series:
    """Return values whose hash is the same in every chunk, whatever the chunk's dtype."""
    values = _plain(values.to_frame()).iloc[:, 0]
    dtype = values.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return values.astype("float64") + 0.0  # ints with nulls are floats; -0.0 is 0.0
    if pd.api.types.is_bool_dtype(dtype):
        values = values.astype(object)  # booleans with nulls are objects
    return as_text(values) if as_id else values


def _partition(
    chunks: Iterator[pa.Table],
    key: tuple[list[str], bool] | None,
    parts: int,
    folder: Path,
    typed: _Typing | None,
) -> int:
    """Write the rows into ``parts`` Parquet files by hash of the key; return the rows."""
    writers: dict[int, pq.ParquetWriter] = {}
    offset = 0
    try:
        for chunk in chunks:
            if typed is not None:
                typed.observe(chunk)
            n = chunk.num_rows
            table = chunk.append_column(_ROW, pa.array(np.arange(offset, offset + n)))
            offset += n
            if parts == 1 or key is None:
                part = np.zeros(n, dtype=np.int64)
            else:
                columns, as_id = key
                frame = chunk.select(columns).to_pandas()
                stable = pd.DataFrame({c: _stable(frame[c], as_id=as_id) for c in columns})
                hashed = pd.util.hash_pandas_object(stable, index=False).to_numpy()
                part = (hashed % np.uint64(parts)).astype(np.int64)
            for p in np.unique(part):
                if p not in writers:
                    target = folder / f"raw-{p:05d}.parquet"
                    writers[p] = pq.ParquetWriter(target, table.schema)
                writers[p].write_table(table.filter(pa.array(part == p)))
    finally:
        for writer in writers.values():
            writer.close()
    return offset


def _text_columns(mapping: EventMapping) -> frozenset[str]:
    """Return the source columns validation reads as text ids (not as numbers)."""
    tx = mapping.transactions
    names = {mapping.columns.get(c, c) for c in ("customer_id", "event_ts", "event_type")}
    names |= {mapping.columns.get(c, c) for c in ("currency", "channel", "campaign_id")}
    numbers = {mapping.columns.get("revenue", "revenue")}
    if tx is not None:
        names.add(tx.order_id_col or "")
        numbers |= {tx.quantity_col or "", tx.unit_price_col or "", tx.amount_col or ""}
    return frozenset(names - numbers - {""})


def _sql_path(path: Path) -> str:
    """Quote a path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _parts(files: Sequence[Path]) -> str:
    """Return the DuckDB table function reading the given Parquet files."""
    return f"read_parquet([{', '.join(_sql_path(p) for p in files)}])"


def validate_to_folder(
    source: str | Path | None,
    out_dir: str | Path,
    *,
    mapping: EventMapping | SourcesMapping | None = None,
    table: str | None = None,
    vocabulary: Sequence[str] = DEFAULT_VOCABULARY,
    now: pd.Timestamp | None = None,
    plausibility: Plausibility | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> tuple[ValidationResult, dict[str, Path]]:
    r"""Validate a source (or every source of a mapping) within a memory cap into a folder.

    Writes what :func:`lifecycle.features.io.load_events` followed by
    :func:`lifecycle.features.io.write_validation` writes, without holding a CSV or Parquet
    source in memory: events, order lines and several sources alike. Database sources are
    read and validated whole (in memory).

    Parameters
    ----------
    source
        A CSV/TXT/TSV file (compressed too), a Parquet file or folder, a DuckDB file or a
        SQLAlchemy URL; None when ``mapping`` names its own sources.
    out_dir
        Folder for events.parquet, quarantine.csv, quarantine.parquet and summary.json.
    mapping
        Column mapping (with ``transactions`` for order lines), a mapping with ``sources``, or
        None for canonical names.
    table
        Database table, when the source is a database (a sources mapping names its own).
    vocabulary
        Allowed event types.
    now
        Cut-off for future timestamps; default: the current UTC time (fixed for the whole run).
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
        When a source cannot be read or does not fit its mapping (nothing is written).
    ValueError
        When a sources mapping comes with a source or table, or no source is given.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "e.csv").write_text("customer_id,event_ts,event_type\n1,2024-01-01,visit\n")
    >>> result, paths = validate_to_folder(folder / "e.csv", folder / "out")
    >>> result.rows_accepted, sorted(paths)
    (1, ['events', 'quarantine_csv', 'quarantine_parquet', 'summary'])
    """
    import duckdb

    sources = _sources(source, mapping, table)
    limit = parse_size(memory_limit)
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    rules = _Rules(tuple(vocabulary), stamp, plausibility)
    # Check every file source's columns against its mapping before any work.
    templates: dict[int, tuple[pd.DataFrame, dict[str, Any], ValidationResult]] = {}
    for i, src in enumerate(sources):
        if src.kind == "database":
            continue
        path = Path(src.path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        frame, options = _template(src, path)
        empty = rules.validate(frame, src)
        templates[i] = (frame, options, empty)
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".validate-", dir=out) as work:
            folder = Path(work)
            results: dict[str, ValidationResult] = {}
            folders: list[Path] = []
            for i, src in enumerate(sources):
                part_folder = folder / f"source-{i:03d}"
                part_folder.mkdir()
                folders.append(part_folder)
                if src.kind == "database":
                    result = _validate_whole(src, part_folder, rules)
                else:
                    result = _validate_streamed(src, part_folder, templates[i], limit, rules)
                results[src.name or ""] = result
            return _write_outputs(folder, folders, out, results, sources, limit, duckdb)
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a folder this call made and filled with nothing
        if isinstance(exc, (MemoryError, pa.ArrowMemoryError, duckdb.OutOfMemoryException)):
            where = source if source is not None else "the sources"
            raise OutOfMemory(
                f"validating {where} needed more than the memory limit {memory_limit}: "
                "raise --memory-limit (or LIFECYCLE_MEMORY_LIMIT), or free memory on this machine"
            ) from exc
        raise


def _validate_whole(src: _Source, folder: Path, rules: _Rules) -> ValidationResult:
    """Read and validate a database source in memory; write its outputs as one part."""
    raw = read_source(src.path, table=src.table, read_options=src.mapping.read)
    result = rules.validate(raw, src)
    del raw
    probe = _write_part(result, folder, "00000")
    return dataclasses.replace(
        result, events=result.events.iloc[:0], quarantine=probe, event_facts=None
    )


def _validate_streamed(
    src: _Source,
    folder: Path,
    template: tuple[pd.DataFrame, dict[str, Any], ValidationResult],
    limit: int,
    rules: _Rules,
) -> ValidationResult:
    """Partition a file source into parts, validate each and add up the counts."""
    frame, options, empty = template
    path = Path(src.path)
    key = _partition_key(src.mapping, list(frame.columns))
    parts = _parts_for(path, limit) if key is not None else 1
    typed = _Typing(_text_columns(src.mapping)) if src.kind == "parquet" else None
    rows_in = _partition(_chunks(src, path, options), key, parts, folder, typed)
    accepted = quarantined = events_out = 0
    reasons: dict[str, int] = {}
    probe = empty.quarantine
    for raw_file in sorted(folder.glob("raw-*.parquet")):
        raw = _plain(pq.read_table(raw_file).to_pandas())
        raw_file.unlink()
        if typed is not None:
            raw = typed.apply(raw)
        positions = raw.pop(_ROW).to_numpy()
        part = rules.validate(raw, src, positions)
        del raw
        written = _write_part(part, folder, raw_file.stem.removeprefix("raw-"))
        probe = written if probe.empty else probe
        accepted += part.rows_accepted
        quarantined += part.rows_quarantined
        events_out += part.events_out
        for reason, count in part.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    notes = empty.notes
    if empty.mode == "transactions":  # the merge note counts the lines and events of all parts
        merged = f"{accepted} accepted lines merged into {events_out} events"
        notes = tuple(_MERGE_NOTE.sub(merged, note) for note in notes)
    return dataclasses.replace(
        empty,
        quarantine=probe,
        rows_in=rows_in,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        events_out=events_out,
        reasons=reasons,
        notes=notes,
    )


def _write_part(result: ValidationResult, folder: Path, name: str) -> pd.DataFrame:
    """Write a part's events and quarantine beside it; return its first quarantined row."""
    if len(result.events):
        pq.write_table(
            pa.Table.from_pandas(result.events, schema=EVENT_SCHEMA, preserve_index=False),
            folder / f"events-{name}.parquet",
        )
    quarantine = result.quarantine
    if len(quarantine):
        quarantine.to_parquet(folder / f"quarantine-{name}.parquet", index=False)
    # Built anew: a slice would keep the whole part's quarantine in memory.
    return pd.DataFrame(quarantine.iloc[:1].to_dict("list")).astype(quarantine.dtypes.to_dict())


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


def _quote(identifier: str) -> str:
    """Quote one SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _quarantine_query(
    folders: Sequence[Path], sources: Sequence[_Source], results: Mapping[str, ValidationResult]
) -> str | None:
    """Return the query of the whole quarantine in source order, then by row; None if empty.

    Several sources get a leading ``source`` column, their raw ``source`` column renamed
    ``raw_source`` and a null in each column another source has (``combine_results``).
    """
    selects = []
    for i, (part_folder, src) in enumerate(zip(folders, sources, strict=True)):
        files = sorted(part_folder.glob("quarantine-*.parquet"))
        if not files:
            continue
        if src.name is None:
            return f"SELECT * FROM {_parts(files)} ORDER BY source_row"  # noqa: S608
        columns = results[src.name].quarantine.columns
        renamed = ", ".join(
            f"{_quote(c)} AS {_quote('raw_source' if c == 'source' else c)}" for c in columns
        )
        name = "'" + src.name.replace("'", "''") + "'"
        selects.append(
            f"SELECT {i} AS __source_order, {name} AS source, {renamed} "  # noqa: S608
            f"FROM {_parts(files)}"
        )
    if not selects:
        return None
    union = " UNION ALL BY NAME ".join(f"({s})" for s in selects)
    return f"SELECT * FROM ({union}) ORDER BY __source_order, source_row"  # noqa: S608


def _write_outputs(
    folder: Path,
    folders: Sequence[Path],
    out: Path,
    results: Mapping[str, ValidationResult],
    sources: Sequence[_Source],
    limit: int,
    duckdb: Any,
) -> tuple[ValidationResult, dict[str, Path]]:
    """Sort the parts with DuckDB under the cap and stream them into the four outputs."""
    if sources[0].name is None:
        shape = results[""]
        result = shape
    else:
        shape = combine_results(results)  # small: each source holds one quarantined row at most
        bare = {
            k: dataclasses.replace(r, quarantine=r.quarantine.iloc[:0]) for k, r in results.items()
        }
        total = sum(r.events_out for r in results.values())
        result = dataclasses.replace(shape, events_out=total, sources=bare)
    quarantine_schema = pa.Table.from_pandas(shape.quarantine.iloc[:0], preserve_index=False).schema
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        budget = max(limit - BASELINE_BYTES, limit // 4) // 2  # DuckDB, beside Arrow batches
        con.execute(f"SET memory_limit = '{budget // 2**20}MiB'")
        con.execute(f"SET temp_directory = {_sql_path(folder / 'spill')}")
        con.execute("SET preserve_insertion_order = false")
        events_glob = sorted(p for f in folders for p in f.glob("events-*.parquet"))
        summary_result = dataclasses.replace(
            result,
            quarantine=result.quarantine.iloc[:0],
            event_facts=_facts(con, events_glob),
        )
        quarantine_query = _quarantine_query(folders, sources, results)

        def events(temp: Path) -> None:
            query = f"SELECT * FROM {_parts(events_glob)} ORDER BY {_EVENT_ORDER}"  # noqa: S608
            _stream(con, query if events_glob else None, EVENT_SCHEMA, temp, None)

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
        for batch in _out_of_memory_as_memory_error(batches):
            table = pa.Table.from_batches([batch])
            for field in schema:  # columns only of sources with no quarantined row: null
                if field.name not in table.column_names:
                    table = table.append_column(field.name, pa.nulls(len(table), field.type))
            table = table.select(schema.names).cast(schema)
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


def _out_of_memory_as_memory_error(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Yield the batches, raising MemoryError where DuckDB ran out (pyarrow calls it OSError)."""
    try:
        yield from batches
    except OSError as exc:
        if not str(exc).startswith("Out of Memory Error"):
            raise
        raise MemoryError(str(exc).splitlines()[0]) from exc
