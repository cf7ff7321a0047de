"""Validate raw event rows against the canonical contract, quarantining every bad row with reasons.

All checks run in one vectorised pass, so a row with several problems gets every reason, and
nothing is dropped silently: ``rows_in == rows_accepted + rows_quarantined`` always holds.

Policies
--------
- ``source_row`` in the quarantine is the 0-based position of the row in the source (for a CSV
  with a header, file line = ``source_row + 2``).
- Naive timestamps are local time in ``mapping.timezone`` and follow Python's ``fold=0`` rule
  (PEP 495): an ambiguous wall time (clocks go back) is the *earlier* instant, and a wall time
  that does not exist (clocks go forward) is read with the offset in force *before* the change,
  so ``02:30`` on a New York spring-forward day is ``07:30 UTC`` (= 03:30 EDT). No row is lost
  to daylight saving. Aware timestamps keep their own offset. Everything ends as UTC.
- Duplicates are rows with the same values in the ``mapping.duplicate_key`` columns (default:
  every source column, so only exact copies); all but the first are quarantined as
  ``duplicate_row``, the reason naming the first row and the key, unless
  ``mapping.duplicates == "keep"``. With the default key, events that differ in any source
  column (an event id, a product code) are not duplicates; dropping such a column before
  validation makes them look like duplicates, which the warning below catches.
- A summary warns when more than :data:`QUARANTINE_WARN_SHARE` (5%) of the rows, overall or of
  any one source, are quarantined: a share that large usually means a mapping problem (a
  dropped column, a wrong duplicate key or timestamp format), not bad data.
- Several sources (:class:`lifecycle.features.mapping.SourcesMapping`) are validated one by one
  and combined by :func:`combine_results`: quarantined rows keep their ``source``, counts
  reconcile per source and in total.
- Transactions: a line's value is ``amount`` or ``quantity * unit_price``; lines of refund
  orders become ``refund`` events with revenue ``-|value|``; a negative quantity, unit price or
  amount outside a refund order is quarantined. Zero values (free items, CDNOW's 80 zero-dollar
  rows) are kept as purchases with zero revenue. Accepted lines are then merged into events.
- Plausibility (:class:`Plausibility`, from the lifecycle config): an event before
  ``validation.earliest_event`` (default 1970-01-01; year 0001 is a broken export, not a
  customer), negative revenue on an event that is not a refund (``features.refund_events``),
  non-zero revenue on an event type that carries none (a visit; revenue belongs to
  ``stages.purchase_events`` and ``features.refund_events`` unless ``validation.revenue_events``
  says otherwise), and a control character (NUL, tab, newline, ...) inside a customer or
  campaign id are each quarantined with their reason. The API refuses the same events (422).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.tseries.api import guess_datetime_format

from lifecycle.features.config import LifecycleConfig
from lifecycle.features.mapping import EventMapping, TransactionMapping
from lifecycle.features.schema import (
    DEFAULT_VOCABULARY,
    EVENT_COLUMNS,
    REQUIRED_COLUMNS,
    empty_events,
)

NULL_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "nat", "none", "null", "<na>"})
"""Text values (compared stripped and lower-case) that count as missing."""

_AWARE_TEXT = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
_NUMBER_TEXT = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_TEXT_COLUMNS: tuple[str, ...] = ("currency", "channel", "campaign_id")

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_CONTROL_TEXT = r"[\x00-\x1f\x7f]"
CONTROL_CHARACTER_MESSAGE = "control character (NUL, tab, newline, ...) in"
"""Start of the reason given to an id holding a control character; the column name follows."""


def has_control_characters(text: str) -> bool:
    r"""Tell whether a text holds an ASCII control character (NUL, tab, newline, DEL, ...).

    Examples
    --------
    >>> has_control_characters("c\x0042"), has_control_characters("c42")
    (True, False)
    """
    return re.search(_CONTROL_TEXT, text) is not None


@dataclass(frozen=True)
class Plausibility:
    """What a plausible event is, beyond the types of its values.

    Parameters
    ----------
    earliest_event
        Events before this instant (UTC) are quarantined.
    revenue_events
        Event types that may carry non-zero revenue.
    refund_events
        Event types whose revenue may be negative.

    Examples
    --------
    >>> Plausibility.from_config(LifecycleConfig()).revenue_events
    ('purchase', 'refund')
    """

    earliest_event: pd.Timestamp = _EPOCH
    revenue_events: tuple[str, ...] = ("purchase", "refund")
    refund_events: tuple[str, ...] = ("refund",)

    @classmethod
    def from_config(cls, config: LifecycleConfig) -> Plausibility:
        """Return the rules of a lifecycle config (``validation``, ``stages``, ``features``)."""
        rules = config.validation
        refunds = tuple(config.features.refund_events)
        revenue = rules.revenue_events
        if revenue is None:
            revenue = tuple(dict.fromkeys([*config.stages.purchase_events, *refunds]))
        return cls(
            earliest_event=pd.Timestamp(rules.earliest_event).tz_localize("UTC"),
            revenue_events=tuple(revenue),
            refund_events=refunds,
        )


QUARANTINE_WARN_SHARE: float = 0.05
"""Share of quarantined rows (overall, or of one source) above which a summary warns loudly.

A clean export loses well under 1% of its rows (Online Retail's 25% comes from one known cause,
lines without a customer id); above 5% the usual cause is the mapping itself."""


class SchemaError(ValueError):
    """The source as a whole does not fit the contract; lists every problem in one message.

    Parameters
    ----------
    problems
        One line per missing or unmappable column.
    source_columns
        The columns the source does have, shown to help fix the mapping.
    """

    def __init__(self, problems: Sequence[str], source_columns: Sequence[str] = ()) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source_columns: tuple[str, ...] = tuple(source_columns)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(
            f"source does not fit the event contract ({len(self.problems)} problem(s)):\n{lines}\n"
            f"source columns: {list(self.source_columns)}"
        )


@dataclass(frozen=True)
class ValidationResult:
    """Canonical events, quarantined rows and the counts that reconcile them.

    ``rows_*`` count source rows (order lines in transaction mode); ``events_out`` counts
    canonical events after merging. ``reasons`` counts rows per problem category, so a row with
    two problems counts under both.
    """

    events: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    events_out: int
    reasons: dict[str, int]
    mode: Literal["events", "transactions", "sources"] = "events"
    revenue_source: str | None = None
    notes: tuple[str, ...] = field(default=())
    sources: Mapping[str, ValidationResult] = field(default_factory=dict)
    """Per source, its own result, when several sources were combined (mode ``sources``)."""
    event_facts: Mapping[str, Any] | None = None
    """Customers, event types, first and last time and revenue total of the events, when they
    were written to disk instead of held in ``events`` (streamed validation)."""

    @property
    def quarantined_share(self) -> float:
        """Share of source rows that were quarantined (0.0 for an empty source)."""
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def warnings(self) -> tuple[str, ...]:
        """Loud warnings: more than :data:`QUARANTINE_WARN_SHARE` of the rows quarantined.

        One line for the whole log and one per source above the threshold, each naming the
        largest reasons.

        Examples
        --------
        >>> raw = pd.DataFrame({"customer_id": ["a", ""], "event_ts": ["2024-01-01"] * 2,
        ...                     "event_type": ["visit"] * 2})
        >>> validate_events(raw).warnings[0][:40]
        '50.0% of rows (1 of 2) were quarantined,'
        """
        found: list[str] = []
        for name, result in [("", self), *self.sources.items()]:
            if result.quarantined_share <= QUARANTINE_WARN_SHARE:
                continue
            top = sorted(result.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            found.append(
                f"{result.quarantined_share:.1%} of rows "
                + (f"of source {name!r} " if name else "")
                + f"({result.rows_quarantined:,} of {result.rows_in:,}) were quarantined, "
                f"above the {QUARANTINE_WARN_SHARE:.0%} alert line; largest reasons: "
                + ", ".join(f"{k} {v:,}" for k, v in top)
                + "; check the mapping (columns, duplicate_key, timestamp_format) before use"
            )
        return tuple(found)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-able summary: counts, reasons, customers, event types, notes, warnings.

        With several sources, ``sources`` holds each source's counts and reasons.

        Returns
        -------
        dict
            Plain ``int``/``float``/``str`` values only.
        """
        facts = dict(self.event_facts) if self.event_facts is not None else event_facts(self.events)
        per_source = {
            name: {
                "rows_in": int(r.rows_in),
                "rows_accepted": int(r.rows_accepted),
                "rows_quarantined": int(r.rows_quarantined),
                "events_out": int(r.events_out),
                "mode": r.mode,
                "reasons": {k: int(v) for k, v in r.reasons.items()},
                "quarantined_share": round(r.quarantined_share, 6),
            }
            for name, r in self.sources.items()
        }
        return {
            "rows_in": int(self.rows_in),
            "rows_accepted": int(self.rows_accepted),
            "rows_quarantined": int(self.rows_quarantined),
            "quarantined_share": round(self.quarantined_share, 6),
            "warnings": list(self.warnings),
            "events_out": int(self.events_out),
            "mode": self.mode,
            **({"sources": per_source} if per_source else {}),
            "reasons": {k: int(v) for k, v in self.reasons.items()},
            "customers": facts["customers"],
            "event_types": facts["event_types"],
            "first_event_ts": facts["first_event_ts"],
            "last_event_ts": facts["last_event_ts"],
            "revenue_source": self.revenue_source,
            "revenue_total": facts["revenue_total"],
            "notes": list(self.notes),
        }


def event_facts(events: pd.DataFrame) -> dict[str, Any]:
    """Return the summary facts of canonical events: customers, types, time span, revenue.

    Examples
    --------
    >>> event_facts(empty_events())["customers"]
    0
    """
    has_events = len(events) > 0
    revenue = events["revenue"]
    return {
        "customers": int(events["customer_id"].nunique()),
        "event_types": {
            str(k): int(v) for k, v in events["event_type"].value_counts().sort_index().items()
        },
        "first_event_ts": events["event_ts"].min().isoformat() if has_events else None,
        "last_event_ts": events["event_ts"].max().isoformat() if has_events else None,
        "revenue_total": float(revenue.sum()) if revenue.notna().any() else None,
    }


@dataclass(frozen=True)
class _Check:
    """One problem category: which rows have it and how to word it."""

    category: str
    mask: np.ndarray
    message: str
    values: pd.Series | None = None
    quote: bool = True


@dataclass(frozen=True)
class _Source:
    """Where a canonical column comes from: a source column or a constant."""

    column: str | None = None
    constant: str | None = None


def as_text(values: pd.Series) -> pd.Series:
    """Return values as stripped text, with blanks and null tokens as missing.

    Parameters
    ----------
    values
        Any column; integral floats (``17850.0``) are written without the ``.0``.

    Returns
    -------
    pandas.Series
        ``str`` dtype; missing values are NaN.

    Examples
    --------
    >>> as_text(pd.Series([" a ", "", "NULL"])).tolist()
    ['a', nan, nan]
    >>> as_text(pd.Series([17850.0, None])).tolist()
    ['17850', nan]
    """
    series = values
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.cat.categories.dtype)
    if series.dtype == object:
        series = series.infer_objects()
    if pd.api.types.is_float_dtype(series.dtype):
        arr = series.to_numpy(dtype=float, na_value=np.nan)
        finite = arr[~np.isnan(arr)]
        if (
            np.isfinite(finite).all()
            and (np.mod(finite, 1) == 0).all()
            and (np.abs(finite) < 2**53).all()
        ):
            series = series.astype("Int64")
    text = series.astype("str").str.strip()
    blank = text.isna() | text.str.lower().isin(NULL_TOKENS)
    return text.mask(blank)


def _parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (float values, missing mask, non-numeric mask) for a numeric or text column."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        arr = values.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(arr)
        return arr, missing, np.isinf(arr)
    text = as_text(values)
    missing = text.isna().to_numpy()
    strings = pa.array(text, type=pa.string())
    numeric = pc.match_substring_regex(strings, _NUMBER_TEXT).fill_null(False)
    floats = pc.if_else(numeric, strings, pa.scalar(None, pa.string())).cast(pa.float64())
    arr = np.asarray(floats.to_numpy(zero_copy_only=False), dtype=float)
    return arr, missing, ~missing & ~np.isfinite(arr)


def localize_naive(naive: pd.Series, timezone: str) -> pd.Series:
    """Read naive wall times in ``timezone`` and return UTC instants, never failing on DST.

    Ambiguous wall times (clocks go back) take the earlier instant; wall times inside a gap
    (clocks go forward) take the offset in force before the change, as Python does for
    ``fold=0`` (PEP 495).

    Parameters
    ----------
    naive
        ``datetime64`` values without a zone.
    timezone
        IANA zone name.

    Returns
    -------
    pandas.Series
        ``datetime64[us, UTC]``.

    Examples
    --------
    >>> ts = pd.Series(pd.to_datetime(["2024-03-10 02:30", "2024-11-03 01:30"]))
    >>> localize_naive(ts, "America/New_York").dt.strftime("%H:%M").tolist()
    ['07:30', '05:30']
    """
    naive = naive.dt.as_unit("us")
    if timezone == "UTC":
        return naive.dt.tz_localize("UTC")
    local = naive.dt.tz_localize(
        timezone, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_backward"
    )
    # Offset of each instant (for gap times: of the last instant before the gap).
    offset = local.dt.tz_localize(None) - local.dt.tz_convert("UTC").dt.tz_localize(None)
    return (naive - offset).dt.tz_localize("UTC")


def _regex_mask(text: pd.Series, pattern: str) -> np.ndarray:
    """Match a regex with Arrow's RE2 (pandas falls back to Python per value for some patterns)."""
    matched = pc.match_substring_regex(pa.array(text, type=pa.string()), pattern)
    return np.asarray(matched.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _lenient(text: pd.Series, *, utc: bool) -> pd.Series:
    """Parse ISO 8601 fast, then a format guessed from the first leftover, then per value."""
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=utc).dt.as_unit("us")
    left = parsed.isna() & text.notna()
    if left.any():
        guessed = guess_datetime_format(str(text[left].iloc[0]))
        if guessed is not None:
            # utc=True keeps a guessed %z from raising; naive text keeps its wall time.
            again = pd.to_datetime(text[left], format=guessed, errors="coerce", utc=True)
            if not utc:
                again = again.dt.tz_localize(None)
            parsed = parsed.where(~left, again.dt.as_unit("us").reindex(parsed.index))
            left = parsed.isna() & text.notna()
    if left.any():
        # Value by value (slow, only for leftovers); month-first when day and month are ambiguous.
        mixed = pd.to_datetime(text[left], format="mixed", errors="coerce", utc=True)
        if not utc:
            mixed = mixed.dt.tz_localize(None)
        parsed = parsed.where(~left, mixed.dt.as_unit("us").reindex(parsed.index))
    return parsed


def parse_timestamps(
    values: pd.Series, *, timezone: str = "UTC", timestamp_format: str | None = None
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse a timestamp column to UTC instants, flagging missing and unparsable values.

    Parameters
    ----------
    values
        Text (ISO 8601 or ``timestamp_format``) or ``datetime64`` values, naive or aware.
    timezone
        Zone of naive values; see :func:`localize_naive` for the DST policy.
    timestamp_format
        strptime format; None parses ISO 8601, then a format guessed from the first value that
        is not ISO, then value by value (month-first for ``01/02/2024``: give a format for
        day-first data). Text counts as aware when an offset, ``Z``, ``UTC`` or ``GMT``
        follows a time of day.

    Returns
    -------
    tuple
        ``datetime64[us, UTC]`` series (NaT where not parsed), missing mask, unparsable mask.

    Examples
    --------
    >>> ts, missing, bad = parse_timestamps(pd.Series(["2024-07-01 12:00", "", "soon"]),
    ...                                     timezone="Europe/London")
    >>> str(ts[0]), missing.tolist(), bad.tolist()
    ('2024-07-01 11:00:00+00:00', [False, True, False], [False, False, True])
    """
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        ts = values.dt.tz_convert("UTC").dt.as_unit("us")
        missing = ts.isna().to_numpy()
    elif pd.api.types.is_datetime64_dtype(dtype):
        ts = localize_naive(values, timezone)
        missing = ts.isna().to_numpy()
    else:
        text = as_text(values)
        missing = text.isna().to_numpy()
        if timestamp_format is not None:
            aware_format = "%z" in timestamp_format or "%Z" in timestamp_format
            parsed = pd.to_datetime(
                text, format=timestamp_format, errors="coerce", utc=aware_format
            ).dt.as_unit("us")
            ts = parsed if aware_format else localize_naive(parsed, timezone)
        else:
            aware = _regex_mask(text, _AWARE_TEXT)
            if not aware.any():
                ts = localize_naive(_lenient(text, utc=False), timezone)
            else:
                parts = [_lenient(text[aware], utc=True)]
                if not aware.all():
                    parts.append(localize_naive(_lenient(text[~aware], utc=False), timezone))
                ts = pd.concat(parts).reindex(text.index)
    ts = ts.astype("datetime64[us, UTC]")
    return ts, missing, ts.isna().to_numpy() & ~missing


def _map_values(values: pd.Series, mapping: Mapping[str, str]) -> pd.Series:
    """Translate raw values through ``mapping``; values not listed stay as they are."""
    if not mapping:
        return values
    listed = values.isin(list(mapping)).to_numpy()
    if not listed.any():
        return values
    out = values.copy()
    out[listed] = values[listed].map(dict(mapping)).astype("str")
    return out


def _constant(value: str | None, n: int) -> pd.Series:
    """Return a ``str`` column holding one value (or missing) n times."""
    return pd.Series([value], dtype="str").repeat(n).reset_index(drop=True)


def _resolve(
    columns: Sequence[str], mapping: EventMapping, vocabulary: Sequence[str]
) -> dict[str, _Source]:
    """Find the source of each canonical column, raising one SchemaError naming every gap."""
    present = set(columns)
    tx = mapping.transactions
    problems: list[str] = []
    sources: dict[str, _Source] = {}
    for col in EVENT_COLUMNS:
        if tx is not None and col == "revenue":
            continue
        if col in mapping.columns:
            src = mapping.columns[col]
            if src in present:
                sources[col] = _Source(column=src)
            else:
                problems.append(f"{col}: mapped to column {src!r}, which the source lacks")
        elif col in mapping.constants:
            sources[col] = _Source(constant=mapping.constants[col])
        elif col in present:
            sources[col] = _Source(column=col)
        elif col in REQUIRED_COLUMNS:
            hint = " or constants.event_type" if col == "event_type" else ""
            problems.append(f"{col}: required, but no source column (map it: columns.{col}{hint})")
    if mapping.duplicate_key is not None:
        absent = [c for c in mapping.duplicate_key if c not in present]
        if absent:
            problems.append(f"duplicate_key: columns {absent} are not in the source")
    if tx is not None:
        for attr in ("order_id_col", "quantity_col", "unit_price_col", "amount_col"):
            name = getattr(tx, attr)
            if name is not None and name not in present:
                problems.append(f"transactions.{attr}: column {name!r} is not in the source")
        if tx.refund_prefix is not None and "refund" not in vocabulary:
            problems.append("transactions.refund_prefix: 'refund' is not in the vocabulary")
    unknown_targets = sorted({v for v in mapping.event_types.values() if v not in vocabulary})
    if unknown_targets:
        problems.append(f"event_types: maps onto {unknown_targets}, not in the vocabulary")
    constant_type = mapping.constants.get("event_type")
    if constant_type is not None:
        canonical = mapping.event_types.get(constant_type, constant_type)
        if canonical not in vocabulary:
            problems.append(f"constants.event_type: {canonical!r} is not in the vocabulary")
    if problems:
        raise SchemaError(problems, list(columns))
    return sources


def _column(raw: pd.DataFrame, source: _Source | None, n: int) -> pd.Series:
    """Return the text of a canonical column from its source (missing when it has none)."""
    if source is None:
        return _constant(None, n)
    if source.column is not None:
        return as_text(raw[source.column])
    return _constant(source.constant, n)


def _utc_now(now: pd.Timestamp | None) -> pd.Timestamp:
    """Return ``now`` as a UTC timestamp (current time when None, naive read as UTC)."""
    if now is None:
        return pd.Timestamp.now(tz="UTC")
    stamp = pd.Timestamp(now)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _duplicate_check(
    raw: pd.DataFrame, keys: Sequence[np.ndarray], key_text: str, where: np.ndarray
) -> _Check:
    """Flag rows identical in every column of ``raw`` to an earlier row, naming that row.

    Identical rows share ``keys`` (integer codes derived from those columns), so only rows
    whose keys repeat are compared column by column; no keys: every row is a candidate.
    """
    dup = np.zeros(len(raw), dtype=bool)
    first = pd.Series(np.nan, index=raw.index)
    if keys:
        frame = pd.DataFrame({str(i): k for i, k in enumerate(keys)})
        candidates = frame.duplicated(keep=False)
    else:
        candidates = pd.Series(True, index=raw.index)
    if len(raw.columns) and candidates.any():
        subset = raw[candidates.to_numpy()]
        dup[np.flatnonzero(candidates.to_numpy())] = subset.duplicated(keep="first").to_numpy()
        if dup.any():
            group = subset[subset.duplicated(keep=False).to_numpy()]
            positions = pd.Series(where[group.index.to_numpy()], index=group.index)
            by = [group[c] for c in group.columns]
            first_pos = positions.groupby(by, dropna=False, sort=False).transform("min")
            first = first_pos.reindex(raw.index)
    return _Check(
        "duplicate_row",
        dup,
        "duplicate of source_row",
        first.astype("Int64").astype("str") + f" (key: {key_text})",
        quote=False,
    )


def _transaction_checks(
    raw: pd.DataFrame, tx: TransactionMapping
) -> tuple[list[_Check], pd.Series, np.ndarray, np.ndarray]:
    """Check order-line columns; return checks, order ids, line values and the refund mask."""
    n = len(raw)
    checks: list[_Check] = []
    order_id = _constant(None, n) if tx.order_id_col is None else as_text(raw[tx.order_id_col])
    refund = np.zeros(n, dtype=bool)
    if tx.refund_prefix is not None:
        refund = order_id.str.startswith(tx.refund_prefix).fillna(False).to_numpy(dtype=bool)
    if tx.merge == "order" or tx.refund_prefix is not None:
        checks.append(_Check("missing_order_id", order_id.isna().to_numpy(), "missing order id"))

    parsed: dict[str, np.ndarray] = {}
    for name, col in (
        ("amount", tx.amount_col),
        ("quantity", tx.quantity_col),
        ("unit_price", tx.unit_price_col),
    ):
        if col is None:
            continue
        values, missing, bad = _parse_numbers(raw[col])
        parsed[name] = values
        # With an amount column, quantity and unit price are optional and only checked.
        if tx.amount_col is None or name == "amount":
            checks.append(_Check(f"missing_{name}", missing, f"missing {name}"))
        checks.append(_Check(f"non_numeric_{name}", bad, f"non-numeric {name}", raw[col]))
        negative = ~refund & (np.nan_to_num(values, nan=0.0) < 0)
        checks.append(
            _Check(
                f"negative_{name}", negative, f"negative {name} outside a refund order", raw[col]
            )
        )
    if tx.amount_col is not None:
        value = parsed["amount"]
    else:
        value = parsed["quantity"] * parsed["unit_price"]
    return checks, order_id, value, refund


def _control_check(name: str, ids: pd.Series) -> _Check:
    """Flag ids holding a control character (they break logs, CSV files and joins)."""
    strings = pa.array(ids, type=pa.string(), from_pandas=True)
    mask = pc.match_substring_regex(strings, _CONTROL_TEXT).fill_null(False)
    return _Check(
        f"control_character_in_{name}",
        np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool),
        f"{CONTROL_CHARACTER_MESSAGE} {name}",
    )


def _revenue_checks(
    revenue: np.ndarray,
    event_type: pd.Series,
    vocabulary: Sequence[str],
    rules: Plausibility,
    *,
    refunds_checked: bool,
) -> list[_Check]:
    """Flag negative revenue outside refunds and non-zero revenue on types that carry none."""
    known = event_type.isin(list(vocabulary)).to_numpy()
    value = np.nan_to_num(np.asarray(revenue, dtype=float), nan=0.0)
    checks: list[_Check] = []
    if refunds_checked:  # transactions check their own signs, per line
        refund = event_type.isin(list(rules.refund_events)).to_numpy()
        checks.append(
            _Check(
                "negative_revenue",
                known & ~refund & (value < 0),
                "negative revenue on an event that is not a refund (features.refund_events):",
                event_type,
            )
        )
    carries = event_type.isin(list(rules.revenue_events)).to_numpy()
    allowed = ", ".join(rules.revenue_events) or "none"
    checks.append(
        _Check(
            "revenue_on_non_revenue_event",
            known & ~carries & (value != 0),
            f"revenue on an event type that carries none (only {allowed}; "
            "validation.revenue_events):",
            event_type,
        )
    )
    return checks


def _reason_text(checks: Sequence[_Check], bad_pos: np.ndarray) -> pd.Series:
    """Join the messages of every failed check per bad row with '; '."""
    reasons = pd.Series(np.full(len(bad_pos), "", dtype=object), dtype="str")
    for check in checks:
        hit = check.mask[bad_pos]
        if not hit.any():
            continue
        rows = bad_pos[hit]
        if check.values is None:
            text = pd.Series(check.message, index=np.flatnonzero(hit), dtype="str")
        else:
            vals = check.values.iloc[rows].astype("str").fillna("").to_numpy()
            vals_s = pd.Series(vals, index=np.flatnonzero(hit), dtype="str")
            text = check.message + (" '" + vals_s + "'" if check.quote else " " + vals_s)
        before = reasons.iloc[np.flatnonzero(hit)]
        joined = before.where(before == "", before + "; ") + text
        reasons.iloc[np.flatnonzero(hit)] = joined.to_numpy()
    return reasons


def _quarantine(
    raw: pd.DataFrame, bad_pos: np.ndarray, reasons: pd.Series, where: np.ndarray
) -> pd.DataFrame:
    """Return the bad raw rows as text, led by ``source_row`` and ``reason``."""
    bad_rows = raw.iloc[bad_pos]
    data: dict[str, Any] = {
        "source_row": where[bad_pos],
        "reason": reasons.to_numpy(),
    }
    for col in raw.columns:
        name = f"raw_{col}" if col in ("source_row", "reason") else col
        data[name] = bad_rows[col].astype("str").reset_index(drop=True)
    frame = pd.DataFrame(data)
    frame["reason"] = frame["reason"].astype("str")
    return frame


def _merge_lines(
    lines: pd.DataFrame, order_id: pd.Series, merge: str, timezone: str
) -> pd.DataFrame:
    """Merge accepted lines into one event per (customer, order or local day, event type)."""
    if merge == "none" or lines.empty:
        return lines
    if merge == "order":
        key = order_id
    else:
        local = lines["event_ts"].dt.tz_convert(timezone).dt.tz_localize(None)
        key = local.dt.normalize()
    frame = lines.assign(_key=key.to_numpy())
    grouped = frame.groupby(["customer_id", "_key", "event_type"], sort=False, dropna=False)
    merged = pd.DataFrame(
        {
            "event_ts": grouped["event_ts"].min(),
            "revenue": grouped["revenue"].sum(min_count=1),
            **{col: grouped[col].first() for col in _TEXT_COLUMNS},
        }
    ).reset_index()
    return merged.drop(columns="_key")


def _sort_codes(values: pd.Series) -> np.ndarray:
    """Return integer codes that sort like the values, missing values last."""
    codes, uniques = pd.factorize(values, sort=True)
    return np.where(codes < 0, len(uniques), codes)


def _canonical(frame: pd.DataFrame, customer_codes: np.ndarray | None = None) -> pd.DataFrame:
    """Sort by every canonical column (nulls last) and return the exact canonical dtypes.

    Sorting integer codes is several times faster than sorting strings; the remaining columns
    only break ties, so they are used only when (customer_id, event_ts, event_type) repeat.
    """
    if frame.empty:
        return empty_events()
    frame = frame.reset_index(drop=True)
    cust = _sort_codes(frame["customer_id"]) if customer_codes is None else customer_codes
    ts = frame["event_ts"].to_numpy(dtype="datetime64[us]").view(np.int64)
    kind = _sort_codes(frame["event_type"])
    order = np.lexsort([kind, ts, cust])
    cust_o, ts_o, kind_o = cust[order], ts[order], kind[order]
    ties = (cust_o[1:] == cust_o[:-1]) & (ts_o[1:] == ts_o[:-1]) & (kind_o[1:] == kind_o[:-1])
    if ties.any():
        extra = [_sort_codes(frame[col]) for col in reversed(_TEXT_COLUMNS)]
        revenue = frame["revenue"].to_numpy(dtype=float, na_value=np.nan)
        order = np.lexsort([*extra, revenue, kind, ts, cust])  # NaN revenue sorts last
    ordered = frame.take(order)[list(EVENT_COLUMNS)].reset_index(drop=True)
    return ordered.astype(empty_events().dtypes.to_dict())


def validate_events(
    raw: pd.DataFrame,
    *,
    mapping: EventMapping | None = None,
    vocabulary: Sequence[str] = DEFAULT_VOCABULARY,
    now: pd.Timestamp | None = None,
    plausibility: Plausibility | None = None,
    positions: np.ndarray | None = None,
) -> ValidationResult:
    """Map raw rows onto canonical events, quarantining every bad row with all its reasons.

    Parameters
    ----------
    raw
        Source rows as read (text preferred; typed columns are accepted too).
    mapping
        Column mapping; None means the source already uses canonical column names.
    vocabulary
        Allowed event types.
    now
        Timestamps after this are quarantined as future; default: the current UTC time.
    plausibility
        Earliest date and revenue roles (:meth:`Plausibility.from_config`); default: those of
        the default lifecycle config.
    positions
        Position in the source of each row (default ``0 .. n-1``): what ``source_row`` and
        duplicate reasons name when ``raw`` is a part of a larger source (streamed validation).

    Returns
    -------
    ValidationResult
        Canonical events sorted by customer_id, event_ts, event_type; the quarantine; counts.

    Raises
    ------
    SchemaError
        When required columns are missing or the mapping does not fit the source.

    Examples
    --------
    >>> raw = pd.DataFrame({"customer_id": ["a", ""], "event_ts": ["2024-01-01", "2024-01-02"],
    ...                     "event_type": ["visit", "visit"]})
    >>> result = validate_events(raw)
    >>> result.rows_accepted, result.quarantine["reason"].tolist()
    (1, ['missing customer_id'])
    """
    mapping = mapping if mapping is not None else EventMapping()
    vocab = tuple(vocabulary)
    raw = raw.reset_index(drop=True)
    raw.columns = pd.Index([str(c) for c in raw.columns])
    sources = _resolve(list(raw.columns), mapping, vocab)
    n = len(raw)
    where = np.arange(n, dtype=np.int64) if positions is None else np.asarray(positions, np.int64)
    tx = mapping.transactions
    checks: list[_Check] = []
    notes: list[str] = [
        "source_row is the 0-based position of the row in the source "
        "(CSV with a header: file line = source_row + 2)",
        "reasons count rows per problem; a row with several problems counts under each",
    ]

    customer_id = _column(raw, sources["customer_id"], n)
    customer_codes = _sort_codes(customer_id)
    checks.append(
        _Check("missing_customer_id", customer_id.isna().to_numpy(), "missing customer_id")
    )

    ts_source = sources["event_ts"].column
    assert ts_source is not None  # noqa: S101 - _resolve never gives event_ts a constant
    event_ts, ts_missing, ts_bad = parse_timestamps(
        raw[ts_source], timezone=mapping.timezone, timestamp_format=mapping.timestamp_format
    )
    future = (event_ts > _utc_now(now)).fillna(False).to_numpy(dtype=bool)
    checks.append(_Check("missing_timestamp", ts_missing, "missing event_ts"))
    checks.append(_Check("unparsable_timestamp", ts_bad, "unparsable event_ts", raw[ts_source]))
    checks.append(_Check("future_timestamp", future, "event_ts in the future", raw[ts_source]))
    rules = plausibility if plausibility is not None else Plausibility()
    early = (event_ts < rules.earliest_event).fillna(False).to_numpy(dtype=bool)
    checks.append(
        _Check(
            "before_earliest_event",
            early,
            f"event_ts before {rules.earliest_event.date()} (validation.earliest_event)",
            raw[ts_source],
        )
    )
    checks.append(_control_check("customer_id", customer_id))

    raw_type = _column(raw, sources["event_type"], n)
    event_type = _map_values(raw_type, mapping.event_types)
    checks.append(_Check("missing_event_type", event_type.isna().to_numpy(), "missing event_type"))
    unknown = (event_type.notna() & ~event_type.isin(vocab)).to_numpy()
    checks.append(_Check("unknown_event_type", unknown, "unknown event_type", raw_type))

    revenue_source: str | None
    order_id: pd.Series | None = None
    if tx is not None:
        tx_checks, order_id, revenue, refund = _transaction_checks(raw, tx)
        checks.extend(tx_checks)
        revenue = np.where(refund, -np.abs(revenue), revenue)
        event_type = event_type.where(~refund, "refund")
        revenue_source = tx.amount_col or f"{tx.quantity_col} * {tx.unit_price_col}"
    elif "revenue" in sources:
        src = sources["revenue"].column
        assert src is not None  # noqa: S101 - revenue cannot be a constant
        revenue, _, revenue_bad = _parse_numbers(raw[src])
        checks.append(_Check("non_numeric_revenue", revenue_bad, "non-numeric revenue", raw[src]))
        revenue_source = src
    else:
        revenue = np.full(n, np.nan)
        revenue_source = None
        notes.append("the source has no revenue column: revenue is null for every event")

    checks.extend(_revenue_checks(revenue, event_type, vocab, rules, refunds_checked=tx is None))
    checks.append(_control_check("campaign_id", _column(raw, sources.get("campaign_id"), n)))

    key = list(mapping.duplicate_key) if mapping.duplicate_key is not None else list(raw.columns)
    key_text = "every source column" if mapping.duplicate_key is None else ", ".join(key)
    if mapping.duplicates == "quarantine":
        # Codes of the customer and timestamp narrow the candidates when they are in the key.
        codes: list[np.ndarray] = []
        if sources["customer_id"].column in key:
            codes.append(customer_codes)
        if ts_source in key:
            ts_codes = event_ts.to_numpy(dtype="datetime64[us]", na_value=np.datetime64("NaT"))
            codes.append(ts_codes.view(np.int64))
        checks.append(_duplicate_check(raw[key], codes, key_text, where))
        notes.append(
            f"rows with the same {key_text} (duplicate_key): the first is kept, "
            "the rest quarantined"
        )
    else:
        notes.append(f"rows with the same {key_text} are kept (duplicates: keep)")

    bad = np.zeros(n, dtype=bool)
    for check in checks:
        bad |= check.mask
    bad_pos = np.flatnonzero(bad)
    quarantine = _quarantine(raw, bad_pos, _reason_text(checks, bad_pos), where)
    reasons = {c.category: int(c.mask.sum()) for c in checks if c.mask.any()}

    ok = ~bad
    lines = pd.DataFrame(
        {
            "customer_id": customer_id[ok],
            "event_ts": event_ts[ok],
            "event_type": event_type[ok],
            "revenue": pd.Series(revenue, dtype=float)[ok],
            **{col: _column(raw, sources.get(col), n)[ok] for col in _TEXT_COLUMNS},
        }
    ).reset_index(drop=True)
    mode: Literal["events", "transactions"] = "events"
    if tx is not None and order_id is not None:
        mode = "transactions"
        merged = _merge_lines(
            lines, order_id[ok].reset_index(drop=True), tx.merge, mapping.timezone
        )
        notes.append(
            f"{int(ok.sum())} accepted lines merged into {len(merged)} events (merge: {tx.merge}); "
            "refund orders give refund events with negative revenue"
        )
        lines = merged
    events = _canonical(lines, customer_codes[ok] if mode == "events" else None)
    return ValidationResult(
        events=events,
        quarantine=quarantine,
        rows_in=n,
        rows_accepted=int(ok.sum()),
        rows_quarantined=len(bad_pos),
        events_out=len(events),
        reasons=reasons,
        mode=mode,
        revenue_source=revenue_source,
        notes=tuple(notes),
    )


def combine_results(results: Mapping[str, ValidationResult]) -> ValidationResult:
    """Combine the validation results of several sources into one canonical log.

    Events are concatenated and sorted as one log (the order of ``results`` does not matter);
    the quarantine gains a leading ``source`` column (a raw column of that name becomes
    ``raw_source``) and holds the union of the sources' columns; counts and reasons add up, so
    ``rows_in == rows_accepted + rows_quarantined`` holds in total and per source.

    Parameters
    ----------
    results
        Source name -> that source's :class:`ValidationResult`.

    Returns
    -------
    ValidationResult
        Mode ``sources``; ``sources`` holds the results given.

    Examples
    --------
    >>> raw = pd.DataFrame({"customer_id": ["a"], "event_ts": ["2024-01-01"],
    ...                     "event_type": ["visit"]})
    >>> both = combine_results({"web": validate_events(raw), "app": validate_events(raw)})
    >>> both.rows_in, both.events_out, both.summary()["sources"]["web"]["rows_in"]
    (2, 2, 1)
    """
    if not results:
        raise ValueError("combine_results: no sources")
    events = _canonical(pd.concat([r.events for r in results.values()], ignore_index=True))
    quarantines = []
    for name, result in results.items():
        part = result.quarantine.rename(columns={"source": "raw_source"})
        part.insert(0, "source", pd.Series([name] * len(part), dtype="str"))
        quarantines.append(part)
    quarantine = pd.concat(quarantines, ignore_index=True)
    reasons: dict[str, int] = {}
    for result in results.values():
        for reason, count in result.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    shared_notes = [
        "source_row is the 0-based position of the row in its source "
        "(CSV with a header: file line = source_row + 2); source names the source",
        "reasons count rows per problem; a row with several problems counts under each",
    ]
    generic = ("source_row is the", "reasons count rows")
    notes = shared_notes + [
        f"{name}: {note}"
        for name, result in results.items()
        for note in result.notes
        if not note.startswith(generic)
    ]
    revenue = [f"{name}: {r.revenue_source}" for name, r in results.items() if r.revenue_source]
    return ValidationResult(
        events=events,
        quarantine=quarantine,
        rows_in=sum(r.rows_in for r in results.values()),
        rows_accepted=sum(r.rows_accepted for r in results.values()),
        rows_quarantined=sum(r.rows_quarantined for r in results.values()),
        events_out=len(events),
        reasons=reasons,
        mode="sources",
        revenue_source="; ".join(revenue) or None,
        notes=tuple(notes),
        sources=dict(results),
    )


__all__ = [
    "NULL_TOKENS",
    "QUARANTINE_WARN_SHARE",
    "SchemaError",
    "ValidationResult",
    "as_text",
    "combine_results",
    "localize_naive",
    "parse_timestamps",
    "validate_events",
]
