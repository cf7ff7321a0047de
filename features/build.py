"""Build point-in-time features: one row per customer per cutoff, from events strictly before it.

The per-event work runs in DuckDB over the definitions of :mod:`lifecycle.features.definitions`;
pandas only adds the per-customer glue (RFM scores, stage names, status).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle.features.config import LifecycleConfig
from lifecycle.features.definitions import DAY_US, bucket_edges_days, feature_definitions
from lifecycle.features.rfm import rfm_columns
from lifecycle.features.schema import EVENT_SCHEMA, REQUIRED_COLUMNS, STAGES

EventSource: TypeAlias = pd.DataFrame | pa.Table | str | Path
"""Canonical events in memory, or the path of a Parquet file or folder of Parquet files."""

KEY_COLUMNS: tuple[str, ...] = ("customer_id", "cutoff")
NO_BUCKET = 2**62  # age bucket of events older than every window


def parse_cutoff(value: str | pd.Timestamp) -> pd.Timestamp:
    """Parse a cutoff as a UTC timestamp; a naive value is taken as UTC.

    Examples
    --------
    >>> parse_cutoff("2024-03-01")
    Timestamp('2024-03-01 00:00:00+0000', tz='UTC')
    """
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise ValueError(f"cutoff {value!r} is not a timestamp")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection with UTC as its time zone.

    Parameters
    ----------
    threads
        Worker threads (default: all cores).
    memory_limit
        DuckDB memory limit such as ``"500MB"``; beyond it DuckDB spills to a temporary
        directory instead of growing (slower, bounded memory).
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # In Jupyter without ipywidgets DuckDB refuses the setting, and never draws a bar there.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        try:
            con.execute(f"SET memory_limit = {_sql_string(memory_limit)}")
        except duckdb.Error as exc:
            con.close()
            raise ValueError(f"memory limit {memory_limit!r} is not a size like '500MB'") from exc
    return con


def event_files(path: Path) -> list[Path]:
    """Parquet files holding events under ``path`` (a file or a folder).

    A folder written by ``lifecycle validate`` or ``lifecycle simulate`` holds ``events.parquet``
    beside other tables (the quarantine, the truth): only ``events.parquet`` is read there.
    Any other folder is read whole, and every file must carry the required columns.
    """
    if not path.is_dir():
        return [path]
    if (path / "events.parquet").is_file():
        return [path / "events.parquet"]
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {path}")
    for file in files:
        names = set(pq.read_schema(file).names)
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{file} is not an event file: it lacks {', '.join(missing)}")
    return files


def register_events(con: duckdb.DuckDBPyConnection, events: EventSource) -> None:
    """Expose canonical events to ``con`` as the view ``events``.

    Absent optional columns read as NULL, and a revenue that is not a finite number reads as
    NULL, so a canonical table with only the required columns works as well.
    """
    if isinstance(events, pd.DataFrame | pa.Table):
        con.register("events_input", events)
        source = "events_input"
        names = (
            set(events.columns) if isinstance(events, pd.DataFrame) else set(events.schema.names)
        )
    else:
        path = Path(events)
        if not path.exists():
            raise FileNotFoundError(f"events not found: {path}")
        files = event_files(path)
        source = "read_parquet([" + ", ".join(_sql_string(str(f)) for f in files) + "])"
        names = set(pq.read_schema(files[0]).names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"events lack the required column(s) {', '.join(missing)}")

    def column(name: str, sql_type: str) -> str:
        return f"CAST({name} AS {sql_type})" if name in names else f"CAST(NULL AS {sql_type})"

    revenue = column("revenue", "DOUBLE")
    columns = ", ".join(
        [
            "CAST(customer_id AS VARCHAR) AS customer_id",
            "CAST(event_ts AS TIMESTAMPTZ) AS event_ts",
            "CAST(event_type AS VARCHAR) AS event_type",
            f"CASE WHEN isfinite({revenue}) THEN {revenue} END AS revenue",
            f"{column('channel', 'VARCHAR')} AS channel",
            f"{column('campaign_id', 'VARCHAR')} AS campaign_id",
        ]
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW events AS SELECT {columns} FROM {source}")  # noqa: S608


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """Quote values as a SQL list for ``IN (...)`` (``NULL`` when empty: matches nothing)."""
    return ", ".join(_sql_string(v) for v in values) or "NULL"


def revenue_micro_sql(refund_events: Iterable[str]) -> str:
    """Return the SQL of an event's revenue in millionths; refunds always negative.

    The one definition of signed revenue, used by the features and by the CLV label.
    """
    micro = "CAST(round(revenue * 1000000) AS BIGINT)"
    return (
        f"CASE WHEN event_type IN ({sql_list(refund_events)}) THEN -abs({micro}) ELSE {micro} END"
    )


def feature_sql(config: LifecycleConfig) -> str:
    """Return the SQL that computes every feature for the cutoff bound to parameter ``$cutoff``.

    Reads the view ``events``; returns one row per customer with an event before the cutoff.
    """
    rules = config.stages
    roles = config.features
    defs = feature_definitions(config)

    def select(scope: str) -> str:
        return ",\n  ".join(f"{f.sql} AS {f.name}" for f in defs if f.scope == scope)

    output = ",\n  ".join(
        (f.sql if f.scope == "derived" else f.name) + f" AS {f.name}"
        for f in defs
        if not f.internal
    )
    derived_inputs = ", ".join(f.name for f in defs if f.scope != "derived")
    edges = bucket_edges_days(config)
    bucket = " ".join(f"WHEN age_us <= {d * DAY_US} THEN {d * DAY_US}" for d in edges)
    return f"""
WITH ev AS NOT MATERIALIZED (
  SELECT customer_id, event_type, channel, campaign_id IS NOT NULL AS has_campaign,
         epoch_us($cutoff::TIMESTAMPTZ) - epoch_us(event_ts) AS age_us,
         -- refunds always reduce revenue, whichever sign the source gave them
         {revenue_micro_sql(roles.refund_events)} AS rev_micro
  FROM events
  WHERE event_ts < $cutoff::TIMESTAMPTZ
),
g AS (
  SELECT customer_id, event_type, channel, has_campaign,
         CASE {bucket} ELSE {NO_BUCKET} END AS age_hi,
         -- counts as DOUBLE (exact: far below 2**53) take less memory than HUGEINT sum
         -- states; revenue stays an exact HUGEINT sum, so any currency scale is exact.
         CAST(count(*) AS DOUBLE) AS n, sum(rev_micro) AS rev, max(rev_micro) AS max_rev,
         min(age_us) AS min_age, max(age_us) AS max_age,
         event_type IN ({sql_list(rules.purchase_events)}) AS is_purchase,
         event_type IN ({sql_list(rules.signup_events)}) AS is_signup,
         event_type IN ({sql_list(rules.loyalty_events)}) AS is_loyalty,
         event_type IN ({sql_list(roles.refund_events)}) AS is_refund,
         event_type IN ({sql_list(roles.exposure_events)}) AS is_exposure
  FROM ev
  GROUP BY ALL
),
pur AS (
  SELECT customer_id, age_us,
         row_number() OVER w AS purchase_rank,
         lag(age_us) OVER w - age_us AS gap_us
  FROM ev WHERE event_type IN ({sql_list(rules.purchase_events)})
  WINDOW w AS (PARTITION BY customer_id ORDER BY age_us DESC)
),
agg_events AS (
  SELECT customer_id,
  {select("events")}
  FROM g GROUP BY customer_id
),
agg_purchases AS (
  SELECT customer_id,
  {select("purchases")}
  FROM pur GROUP BY customer_id
),
joined AS (
  SELECT customer_id, {derived_inputs}
  FROM agg_events LEFT JOIN agg_purchases USING (customer_id)
)
SELECT customer_id,
  {output}
FROM joined
ORDER BY customer_id
"""  # noqa: S608 - only config-derived literals are interpolated, each one quoted


def _loyalty_by_rfm(config: LifecycleConfig, features: pd.DataFrame) -> bool:
    """Resolve ``loyalty_top_rfm_tier`` at one cutoff, from that cutoff's features.

    "auto" uses the top RFM tier only when no loyalty event happened before the cutoff
    (transaction-only logs); ``n_loyalty_signals`` already counts exactly those events.
    """
    mode = config.stages.loyalty_top_rfm_tier
    if mode != "auto":
        return mode == "always"
    return int(features["n_loyalty_signals"].sum()) == 0


def build_features(
    events: EventSource,
    *,
    cutoffs: pd.Timestamp | str | Sequence[pd.Timestamp | str],
    config: LifecycleConfig | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: Callable[[int], None] | None = None,
    rfm_reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Compute features as of each cutoff, from events strictly before it.

    Parameters
    ----------
    events
        Canonical events (DataFrame or Arrow table), or a Parquet file or folder.
    cutoffs
        One cutoff or several; naive values are UTC. An event exactly at a cutoff is excluded.
    config
        Lifecycle config (vocabulary, stage rules, windows); the shipped default when None.
    threads
        DuckDB threads (default: all cores).
    memory_limit
        Cap on DuckDB's memory, e.g. ``"400MB"``: larger work spills to disk (slower).
    progress
        Called with 1 after each cutoff is done.
    rfm_reference
        Score RFM against this population (features of one cutoff, e.g. the last batch
        scoring) rather than the customers at the same cutoff, and resolve the "auto"
        top-RFM-tier loyalty rule from it: for scoring a few customers on the spot.

    Returns
    -------
    pandas.DataFrame
        One row per customer with at least one event before the cutoff, per cutoff, sorted by
        ``cutoff`` then ``customer_id``: the keys, every feature of
        :func:`lifecycle.features.definitions.feature_definitions`, ``rfm_r``, ``rfm_f``, ``rfm_m``,
        ``rfm_segment``, ``stage`` and ``status`` (``active`` or ``lapsed``).

    Examples
    --------
    >>> ev = pd.DataFrame({"customer_id": ["a", "a"], "event_type": ["signup", "purchase"],
    ...     "event_ts": pd.to_datetime(["2024-01-01", "2024-01-05"], utc=True),
    ...     "revenue": [None, 10.0], "channel": None, "campaign_id": None})
    >>> build_features(ev, cutoffs="2024-01-05")[["customer_id", "stage"]].to_dict("records")
    [{'customer_id': 'a', 'stage': 'acquisition'}]
    """
    config = config or LifecycleConfig()
    if isinstance(cutoffs, str | pd.Timestamp):
        cutoffs = [cutoffs]
    cuts = sorted({parse_cutoff(c) for c in cutoffs})
    if not cuts:
        raise ValueError("at least one cutoff is needed")
    con = connect(threads, memory_limit)
    try:
        register_events(con, events)
        sql = feature_sql(config)
        frames, tier_cutoffs = [], []
        for cut in cuts:
            table = con.sql(sql, params={"cutoff": cut.isoformat()}).to_arrow_table()
            frame = table.to_pandas()
            if _loyalty_by_rfm(config, frame if rfm_reference is None else rfm_reference):
                tier_cutoffs.append(cut)
            frame.insert(
                1, "cutoff", pd.Series(cut, index=frame.index).astype("datetime64[us, UTC]")
            )
            frames.append(frame)
            if progress:
                progress(1)
    finally:
        con.close()
    features = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _add_customer_glue(features, config, tier_cutoffs, rfm_reference)


def _add_customer_glue(
    features: pd.DataFrame,
    config: LifecycleConfig,
    rfm_tier_cutoffs: Sequence[pd.Timestamp],
    rfm_reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add RFM scores, the stage name (with the optional top-RFM-tier loyalty) and the status.

    ``rfm_tier_cutoffs`` are the cutoffs at which the top RFM tier counts as loyalty. Works in
    place on ``features``, a frame this module just built.
    """
    out = features
    for name, column in rfm_columns(features, config.rfm.bins, rfm_reference).items():
        out[name] = column
    code = out["stage_code"].to_numpy(dtype=np.int64).copy()
    if rfm_tier_cutoffs:
        top = out["rfm_segment"].isin(config.stages.top_rfm_segments).to_numpy()
        at_tier_cutoff = out["cutoff"].isin(rfm_tier_cutoffs).to_numpy()
        code[(code == 3) & top & at_tier_cutoff] = 4
    out["stage_code"] = code
    out["stage"] = pd.Series(np.asarray(STAGES, dtype=object)[code], index=out.index, dtype="str")
    active_days = float(config.stages.active_days)
    recency = out["days_since_last_purchase"].fillna(out["days_since_last_event"])
    out["status"] = pd.Series(
        np.where(recency < active_days, "active", "lapsed"), index=out.index, dtype="str"
    )
    return out


def feature_columns(config: LifecycleConfig | None = None) -> list[str]:
    """Return the model-ready numeric feature columns (definitions plus RFM scores)."""
    config = config or LifecycleConfig()
    names = [f.name for f in feature_definitions(config) if not f.internal]
    return [*names, "rfm_r", "rfm_f", "rfm_m"]


def typical_values(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, float]:
    """Median of each feature over a population (missing values left out).

    What the explanations call "a typical customer": the service's lookup table, or the
    evaluation population a model's record carries.

    Examples
    --------
    >>> typical_values(pd.DataFrame({"a": [1.0, 3.0, None], "b": [None, None, None]}), ["a", "b"])
    {'a': 2.0}
    """
    medians = frame[list(names)].median(numeric_only=True, skipna=True)
    return {str(name): float(v) for name, v in medians.items() if pd.notna(v)}


def event_time_range(events: EventSource) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return the first and last event time (UTC); raise ValueError when there are no events."""
    con = connect()
    try:
        register_events(con, events)
        sql = "SELECT epoch_us(min(event_ts)), epoch_us(max(event_ts)) FROM events"
        first, last = con.execute(sql).fetchall()[0]
    finally:
        con.close()
    if first is None:
        raise ValueError("the event log has no events")
    return (pd.Timestamp(first, unit="us", tz="UTC"), pd.Timestamp(last, unit="us", tz="UTC"))


@dataclass(frozen=True)
class EventLog:
    """An event log read once: the events in memory and what a training run records of them.

    Made by :func:`read_event_log`; ``events`` is what every later step reads (features,
    labels, baselines), so one training run opens the source once.
    """

    events: pd.DataFrame | pa.Table
    """The events as read (an Arrow table for Parquet sources)."""
    digest: str
    """``sha256:`` of the source's bytes (Parquet files in order) or of the frame's rows."""
    source: str
    rows: int
    customers: int
    first: pd.Timestamp
    last: pd.Timestamp


def read_event_log(events: EventSource) -> EventLog:
    """Read an event log once: its events into memory, its content hash, counts and period.

    Parameters
    ----------
    events
        Canonical events: a frame, an Arrow table, or a Parquet file or folder.

    Returns
    -------
    EventLog
        The events and their description.

    Raises
    ------
    ValueError
        When the source cannot be read as events, or holds none.

    Examples
    --------
    >>> log = read_event_log(pd.DataFrame({
    ...     "customer_id": ["a", "b", "a"],
    ...     "event_ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05"], utc=True),
    ...     "event_type": "visit"}))
    >>> (log.rows, log.customers, str(log.last.date()))
    (3, 2, '2024-01-05')
    """
    import hashlib

    digest = hashlib.sha256()
    data: pd.DataFrame | pa.Table
    if isinstance(events, pd.DataFrame):
        digest.update(pd.util.hash_pandas_object(events, index=False).to_numpy().tobytes())
        data, source = events, "in-memory frame"
    elif isinstance(events, pa.Table):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, events.schema) as writer:
            writer.write_table(events)
        digest.update(sink.getvalue().to_pybytes())
        data, source = events, "in-memory table"
    else:
        path = Path(events)
        if not path.exists():
            raise FileNotFoundError(f"events not found: {path}")
        tables = []
        for file in event_files(path):
            raw = file.read_bytes()  # hashed and parsed from the same bytes: one read
            digest.update(raw)
            tables.append(pq.read_table(pa.BufferReader(raw)))
        # "permissive" also unifies string with large_string (files written by other tools)
        data = pa.concat_tables(tables, promote_options="permissive")
        source = str(events)
    con = connect()
    try:
        register_events(con, data)
        rows, customers, first, last = con.sql(
            "SELECT count(*), count(DISTINCT customer_id), epoch_us(min(event_ts)), "
            "epoch_us(max(event_ts)) FROM events"
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise ValueError(f"could not read the events: {exc}") from exc
    finally:
        con.close()
    if first is None:
        raise ValueError("the event log has no events")
    return EventLog(
        events=data,
        digest=f"sha256:{digest.hexdigest()}",
        source=source,
        rows=int(rows),
        customers=int(customers),
        first=pd.Timestamp(first, unit="us", tz="UTC"),
        last=pd.Timestamp(last, unit="us", tz="UTC"),
    )


def is_canonical(files: Sequence[Path]) -> bool:
    """Whether every Parquet file has the required columns with the canonical types."""
    for file in files:
        schema = pq.read_schema(file)
        for field in EVENT_SCHEMA:
            index = schema.get_field_index(field.name)
            if index < 0:
                if field.name in REQUIRED_COLUMNS:
                    return False
                continue
            found = schema.field(index).type
            if found != field.type and not (
                pa.types.is_string(field.type) and pa.types.is_large_string(found)
            ):
                return False
    return True


def monthly_cutoffs(
    events: EventSource,
    *,
    day: int = 1,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> list[pd.Timestamp]:
    """Return the first instant of each month (UTC) between the first and last event.

    Parameters
    ----------
    events
        Canonical events or a Parquet path.
    day
        Day of the month for each cutoff.
    start, end
        Optional bounds; default from the data (after the first event, up to the last event).

    Returns
    -------
    list of pandas.Timestamp
        Ascending UTC cutoffs.
    """
    if start is None or end is None:
        first, last = event_time_range(events)
        start = first if start is None else start
        end = last if end is None else end
    lo, hi = parse_cutoff(start), parse_cutoff(end)
    months = pd.date_range(lo.normalize().replace(day=1), hi, freq="MS", tz="UTC")
    cuts = [m + pd.Timedelta(days=day - 1) for m in months]
    return [c for c in cuts if lo < c <= hi]


def write_features(features: pd.DataFrame, path: str | Path) -> Path:
    """Write features to Parquet deterministically (same frame, same bytes)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(features, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, out, compression="zstd", write_statistics=True)
    return out


__all__ = [
    "DAY_US",
    "KEY_COLUMNS",
    "build_features",
    "event_files",
    "event_time_range",
    "feature_columns",
    "monthly_cutoffs",
    "parse_cutoff",
    "write_features",
]
