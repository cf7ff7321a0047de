"""Build point-in-time features: one row per customer per cutoff, from events strictly before it.

The per-event work runs in DuckDB over the definitions of :mod:`lifecycle.features.definitions`;
pandas only adds the per-customer glue (RFM scores, stage names, status).
"""

from __future__ import annotations

import contextlib
import re
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
from lifecycle.features.definitions import (
    DAY_US,
    Feature,
    bucket_edges_days,
    feature_definitions,
)
from lifecycle.features.io import replace_atomically
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


def feature_sql(
    config: LifecycleConfig,
    *,
    columns: Sequence[str] | None = None,
    cutoffs_table: str | None = None,
) -> str:
    """Return the SQL that computes the features for the cutoff bound to parameter ``$cutoff``.

    Reads the view ``events``; returns one row per customer with an event before the cutoff.

    Parameters
    ----------
    config
        The lifecycle config the definitions come from.
    columns
        Output features to compute (default: all). The query then holds only their
        definitions and those they read (output features among these are returned too):
        the same SQL expressions as the full query, so the same values, at a fraction of its
        cost (what a sticky-loyalty check needs, :data:`CHECK_COLUMNS`).
    cutoffs_table
        Name of a table with a TIMESTAMPTZ column ``cutoff``: compute the features at every
        cutoff it holds in one query, instead of at ``$cutoff``. Rows are keyed by
        ``customer_id`` and ``cutoff``, in no particular order (unsorted: the sort would cost
        a third of a checks query).

    Examples
    --------
    >>> con = connect()
    >>> register_events(con, pd.DataFrame({"customer_id": ["a", "a"],
    ...     "event_ts": pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True),
    ...     "event_type": "purchase", "revenue": [5.0, 7.0]}))
    >>> _ = con.register("cuts", pd.DataFrame({"cutoff": pd.to_datetime(
    ...     ["2024-01-15", "2024-03-01"], utc=True)}))
    >>> sql = feature_sql(LifecycleConfig(), columns=["n_purchases"], cutoffs_table="cuts")
    >>> con.sql(sql).df().sort_values("cutoff")["n_purchases"].tolist()
    [1, 2]
    """
    rules = config.stages
    roles = config.features
    defs = _with_inputs(feature_definitions(config), columns)
    if cutoffs_table is None:
        at, keys, order = "$cutoff::TIMESTAMPTZ", "customer_id", "ORDER BY customer_id"
        source = f"events WHERE event_ts < {at}"
    else:
        at, keys, order = "c.cutoff", "cutoff, customer_id", ""
        source = f"events JOIN {cutoffs_table} AS c ON event_ts < c.cutoff"

    def select(scope: str) -> str:
        return "".join(f",\n  {f.sql} AS {f.name}" for f in defs if f.scope == scope)

    output = ",\n  ".join(
        (f.sql if f.scope == "derived" else f.name) + f" AS {f.name}"
        for f in defs
        if not f.internal
    )
    derived_inputs = "".join(f", {f.name}" for f in defs if f.scope != "derived")
    # A subset groups ``g`` only by the columns its definitions read (sums, minima and
    # maxima over coarser groups are the same numbers), and leaves out the window over
    # every purchase when no purchase-sequence feature is asked for.
    read = set(re.findall(r"[A-Za-z_]\w*", " ".join(f.sql for f in defs if f.scope == "events")))
    g_keys = "".join(f", {c}" for c in ("channel", "has_campaign") if c in read)
    if "age_hi" in read:
        edges = bucket_edges_days(config)
        bucket = " ".join(f"WHEN age_us <= {d * DAY_US} THEN {d * DAY_US}" for d in edges)
        g_keys += f",\n         CASE {bucket} ELSE {NO_BUCKET} END AS age_hi"
    purchases = select("purchases")
    joined = "agg_events"
    by_purchase = ""
    if purchases:
        joined += f" LEFT JOIN agg_purchases USING ({keys})"
        by_purchase = f"""
pur AS (
  SELECT {keys}, age_us,
         row_number() OVER w AS purchase_rank,
         lag(age_us) OVER w - age_us AS gap_us
  FROM ev WHERE event_type IN ({sql_list(rules.purchase_events)})
  WINDOW w AS (PARTITION BY {keys} ORDER BY age_us DESC)
),
agg_purchases AS (
  SELECT {keys}{purchases}
  FROM pur GROUP BY {keys}
),"""  # noqa: S608 - as below
    return f"""
WITH ev AS NOT MATERIALIZED (
  SELECT {"c.cutoff AS cutoff, " if cutoffs_table else ""}customer_id, event_type, channel,
         campaign_id IS NOT NULL AS has_campaign,
         epoch_us({at}) - epoch_us(event_ts) AS age_us,
         -- refunds always reduce revenue, whichever sign the source gave them
         {revenue_micro_sql(roles.refund_events)} AS rev_micro
  FROM {source}
),
g AS (
  SELECT {keys}, event_type{g_keys},
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
),{by_purchase}
agg_events AS (
  SELECT {keys}{select("events")}
  FROM g GROUP BY {keys}
),
joined AS (
  SELECT {keys}{derived_inputs}
  FROM {joined}
)
SELECT customer_id, {"cutoff, " if cutoffs_table else ""}
  {output}
FROM joined
{order}
"""  # noqa: S608 - only config-derived literals and the caller's table name are interpolated


def _with_inputs(defs: list[Feature], columns: Sequence[str] | None) -> list[Feature]:
    """Return the definitions of ``columns`` and of all they are computed from, in order."""
    if columns is None:
        return defs
    by_name = {f.name: f for f in defs}
    unknown = [c for c in columns if c not in by_name or by_name[c].internal]
    if unknown:
        raise ValueError(f"no output feature named {', '.join(map(repr, unknown))}")
    needed: set[str] = set()
    todo = list(columns)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if by_name[name].scope == "derived":  # derived SQL reads other features by name
            todo += [t for t in re.findall(r"[A-Za-z_]\w*", by_name[name].sql) if t in by_name]
    return [f for f in defs if f.name in needed]


def _loyalty_by_rfm(config: LifecycleConfig, features: pd.DataFrame) -> bool:
    """Resolve ``loyalty_top_rfm_tier`` at one cutoff, from that cutoff's features.

    "auto" uses the top RFM tier only when no loyalty event happened before the cutoff
    (transaction-only logs); ``n_loyalty_signals`` already counts exactly those events.
    """
    mode = config.stages.loyalty_top_rfm_tier
    if mode != "auto":
        return mode == "always"
    return int(features["n_loyalty_signals"].sum()) == 0


def loyalty_check_dates(
    first_event: pd.Timestamp, cutoff: pd.Timestamp, keep_days: int | None
) -> list[pd.Timestamp]:
    """Return the earlier dates at which the top RFM tier is checked for sticky loyalty.

    The start of every month (UTC) strictly after the first event and strictly before the
    cutoff, and no more than ``keep_days`` before it (all of them when None). The dates depend
    on the calendar only, never on which cutoffs are asked for, so a cutoff's stage is the same
    whatever other cutoffs are built with it.

    Examples
    --------
    >>> [str(d.date()) for d in loyalty_check_dates(
    ...     parse_cutoff("2024-01-15"), parse_cutoff("2024-04-01"), None)]
    ['2024-02-01', '2024-03-01']
    >>> [str(d.date()) for d in loyalty_check_dates(
    ...     parse_cutoff("2024-01-15"), parse_cutoff("2024-04-01"), 31)]
    ['2024-03-01']
    """
    start = first_event.tz_convert("UTC").normalize().replace(day=1)
    months = pd.date_range(start, cutoff, freq="MS", tz="UTC")
    floor = cutoff - pd.Timedelta(days=keep_days) if keep_days is not None else None
    return [m for m in months if first_event < m < cutoff and (floor is None or m >= floor)]


CHECK_COLUMNS: tuple[str, ...] = (
    "n_purchases",
    "net_revenue_total",
    "days_since_last_purchase",
    "mean_purchase_gap_days",
    "stage_code",
)
"""What a sticky-loyalty check reads: the RFM inputs of :func:`lifecycle.features.rfm.rfm_columns`
(``mean_purchase_gap_days`` for rhythm recency) and the event-based stage code."""

CHECK_EVENT_ROWS = 20_000_000
"""Events times check dates that one checks query may join: bounds its memory near that of
one build over a log of that many events (CDNOW's 67,591 events take every date at once)."""


def _loyalty_checks(
    con: duckdb.DuckDBPyConnection,
    config: LifecycleConfig,
    tier_cutoffs: Sequence[pd.Timestamp],
    built: dict[pd.Timestamp, pd.DataFrame],
    rfm_reference: pd.DataFrame | None,
) -> pd.DataFrame:
    """Who the top RFM tier found at each check date before the tier cutoffs (sticky loyalty).

    Features at a check date come from events before it (reused when the date is also a
    cutoff), so a stage at a cutoff still reads only events before that cutoff. The other
    dates are built together in one query of :data:`CHECK_COLUMNS` only (in chunks of
    :data:`CHECK_EVENT_ROWS`): the same definitions, so the same values as a full build.
    """
    keep = config.stages.sticky.loyalty_days
    empty = pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="str"),
            "checked_at": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )
    if not tier_cutoffs or keep == 0:
        return empty
    sql = "SELECT count(*), epoch_us(min(event_ts)) FROM events"
    n_events, first_us = con.sql(sql).fetchall()[0]
    if first_us is None:
        return empty
    first = pd.Timestamp(first_us, unit="us", tz="UTC")
    dates = sorted({d for cut in tier_cutoffs for d in loyalty_check_dates(first, cut, keep)})
    keys = ["customer_id", "cutoff", *CHECK_COLUMNS]
    frames = [built[d][keys] for d in dates if d in built]
    todo = [d for d in dates if d not in built]
    if todo:
        sql = feature_sql(config, columns=CHECK_COLUMNS, cutoffs_table="check_dates")
        per_query = max(1, CHECK_EVENT_ROWS // max(n_events, 1))
        for start in range(0, len(todo), per_query):
            chunk = pd.Series(todo[start : start + per_query], dtype="datetime64[us, UTC]")
            con.register("check_dates", pd.DataFrame({"cutoff": chunk}))
            frames.append(con.sql(sql).to_arrow_table().to_pandas()[keys])
        con.unregister("check_dates")
    if not frames:
        return empty
    checked = pd.concat(frames, ignore_index=True)
    # The tier route is on at every check date: each is before a tier cutoff, so "auto" saw
    # no loyalty event before it either (and a reference decides once for all dates). Only
    # customers in retention can be found: they alone are scored, against the reference or
    # else against everyone at their date, which is how rfm_columns scores a whole date.
    if rfm_reference is not None:
        pairs = [(checked, rfm_reference)]
    else:
        pairs = [(at_date, at_date) for _, at_date in checked.groupby("cutoff", sort=False)]
    found = [empty]
    for rows, population in pairs:
        scored = rows.loc[rows["stage_code"].to_numpy() >= 3]
        if scored.empty:
            continue
        rfm = rfm_columns(scored, config.rfm.bins, population, config.rfm.recency)
        top = scored.loc[rfm["rfm_segment"].isin(config.stages.top_rfm_segments).to_numpy()]
        found.append(pd.DataFrame({"customer_id": top["customer_id"], "checked_at": top["cutoff"]}))
    checks = pd.concat(found, ignore_index=True)
    return checks.astype({"customer_id": "str", "checked_at": "datetime64[us, UTC]"})


def _kept_loyal(features: pd.DataFrame, checks: pd.DataFrame, keep_days: int | None) -> np.ndarray:
    """Rows whose customer the top tier found at a check before the row's cutoff, within keep."""
    kept = np.zeros(len(features), dtype=bool)
    if checks.empty:
        return kept
    left = pd.DataFrame(
        {
            "customer_id": features["customer_id"].astype("str").to_numpy(),
            "cutoff": features["cutoff"].astype("datetime64[us, UTC]").array,
            "row": np.arange(len(features)),
        }
    ).sort_values("cutoff", kind="stable")
    merged = pd.merge_asof(
        left,
        checks.sort_values("checked_at", kind="stable"),
        left_on="cutoff",
        right_on="checked_at",
        by="customer_id",
        allow_exact_matches=False,  # a check at the cutoff itself is the cutoff's own tier
        direction="backward",
        tolerance=pd.Timedelta(days=keep_days) if keep_days is not None else None,
    )
    kept[merged["row"].to_numpy()] = merged["checked_at"].notna().to_numpy()
    return kept


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
        checks = _loyalty_checks(
            con, config, tier_cutoffs, dict(zip(cuts, frames, strict=True)), rfm_reference
        )
    finally:
        con.close()
    features = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _add_customer_glue(features, config, tier_cutoffs, rfm_reference, checks)


def _add_customer_glue(
    features: pd.DataFrame,
    config: LifecycleConfig,
    rfm_tier_cutoffs: Sequence[pd.Timestamp],
    rfm_reference: pd.DataFrame | None = None,
    loyalty_checks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add RFM scores, the stage name (with the optional top-RFM-tier loyalty) and the status.

    ``rfm_tier_cutoffs`` are the cutoffs at which the top RFM tier counts as loyalty;
    ``loyalty_checks`` (``customer_id``, ``checked_at``) who the tier found at earlier check
    dates, kept loyal by ``stages.sticky``. Works in place on ``features``, a frame this module
    just built.
    """
    out = features
    scores = rfm_columns(features, config.rfm.bins, rfm_reference, config.rfm.recency)
    for name, column in scores.items():
        out[name] = column
    code = out["stage_code"].to_numpy(dtype=np.int64).copy()
    if rfm_tier_cutoffs:
        top = out["rfm_segment"].isin(config.stages.top_rfm_segments).to_numpy()
        if loyalty_checks is not None:
            top = top | _kept_loyal(out, loyalty_checks, config.stages.sticky.loyalty_days)
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


def typical_values_by_stage(
    frame: pd.DataFrame, names: Sequence[str], *, stage_col: str = "stage_code"
) -> dict[str, dict[str, float]]:
    """Median of each feature among the customers of each lifecycle stage.

    What the explanations call "a typical customer in this stage": a one-time buyer is
    compared with other one-time buyers, not with a population where most never bought.
    Stages without customers are left out, as are features missing for a whole stage.

    Parameters
    ----------
    frame
        One row per customer with the features and the stage code (0 reach ... 4 loyalty).
    names
        The features to summarise.
    stage_col
        The column holding the stage code.

    Returns
    -------
    dict
        Stage name -> (feature -> median), as :func:`typical_values` per stage.

    Examples
    --------
    >>> frame = pd.DataFrame({"stage_code": [2, 2, 3], "n_purchases": [1.0, 1.0, 4.0]})
    >>> typical_values_by_stage(frame, ["n_purchases"])
    {'conversion': {'n_purchases': 1.0}, 'retention': {'n_purchases': 4.0}}
    """
    if stage_col not in frame.columns:
        raise ValueError(f"the frame has no stage column {stage_col!r}")
    codes = pd.to_numeric(frame[stage_col], errors="coerce")
    out: dict[str, dict[str, float]] = {}
    for code, stage in enumerate(STAGES):
        rows = frame[codes == code]
        if len(rows):
            out[stage] = typical_values(rows, names)
    return out


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
    """Write features to Parquet deterministically (same frame, same bytes), atomically.

    The file is written beside ``path`` and renamed into place
    (:func:`lifecycle.features.io.replace_atomically`): a killed run leaves the old file whole.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(features, preserve_index=False)
    table = table.replace_schema_metadata(None)
    return replace_atomically(
        out,
        lambda temp: pq.write_table(table, temp, compression="zstd", write_statistics=True),
    )


__all__ = [
    "DAY_US",
    "KEY_COLUMNS",
    "build_features",
    "event_files",
    "event_time_range",
    "feature_columns",
    "loyalty_check_dates",
    "monthly_cutoffs",
    "parse_cutoff",
    "write_features",
]
