"""Point-in-time feature definitions: one SQL expression per feature, the single source of truth.

Each :class:`Feature` has a scope. ``events`` features are aggregates over ``g``, the events
strictly before the cutoff ``T`` grouped by customer, event type, channel, campaign flag and
age bucket (the bucket edges are the feature windows, so a window holds whole groups);
``purchases`` features are aggregates over ``pur``, one row per purchase with its sequence
columns; ``derived`` features are expressions over other features' columns (by name). Columns
whose name starts with ``_`` are intermediate and not part of the output.

``g`` has, per group: ``n`` (events), ``rev`` (revenue in millionths, an exact integer sum,
so results never depend on row order), ``max_rev``, ``min_age`` and ``max_age`` (``T - event_ts``
in microseconds, always > 0), ``age_hi`` (the bucket's upper edge in microseconds), and the
flags ``is_purchase``, ``is_signup``, ``is_loyalty`` (stage rules), ``is_refund``,
``is_exposure`` (event roles in the feature settings) and ``has_campaign``. Refund revenue is
always negative in ``rev``, whatever sign the source gave it.

``pur`` has, per purchase: ``age_us``, ``purchase_rank`` (1 for a customer's first purchase,
2 for the second, ...; ties share a timestamp, so any order among them gives the same values)
and ``gap_us`` (microseconds since the previous purchase, NULL for the first).

The expressions are plain SQL aggregates (``sum``, ``min``, ``max`` over ``CASE``) that
DuckDB runs today and Spark SQL runs as well; everything dialect-specific lives in the base
relations of :mod:`features.build`. Integer arithmetic keeps results byte-identical whatever
the thread count or the order of the input rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from features.config import LifecycleConfig

DAY_US = 86_400_000_000
"""Microseconds in a (24-hour) day: windows are absolute durations, not calendar days."""


@dataclass(frozen=True)
class Feature:
    """One feature: its column name, SQL, family, a plain description and its scope."""

    name: str
    sql: str
    family: str
    description: str
    scope: Literal["events", "purchases", "derived"] = "events"

    @property
    def internal(self) -> bool:
        """Whether the column is an intermediate that is not part of the output."""
        return self.name.startswith("_")


def _days(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE) / {DAY_US}"


def _money(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE) / 1000000"


def _ident(value: str) -> str:
    """Turn a category value into a safe column-name suffix."""
    return re.sub(r"[^0-9a-z]+", "_", value.lower()).strip("_")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_window(days: int) -> str:
    return f"age_hi <= {days * DAY_US}"


def _when(cond: str | None, value: str) -> str:
    # CASE inside the aggregate, not FILTER: DuckDB runs ~90 FILTER aggregates over one hash
    # table more than ten times slower than the same aggregates over CASE expressions.
    return f"CASE WHEN {cond} THEN {value} END" if cond else value


def _count(cond: str | None = None) -> str:
    """Events in the groups matching ``cond`` (0 when none)."""
    return f"CAST(coalesce(sum({_when(cond, 'n')}), 0) AS BIGINT)"


def _sum_rev(cond: str) -> str:
    """Revenue in millionths of the groups matching ``cond`` (0 when none)."""
    return f"coalesce(sum({_when(cond, 'rev')}), 0)"


def _min_age(cond: str | None = None) -> str:
    return f"min({_when(cond, 'min_age')})"


def _max_age(cond: str | None = None) -> str:
    return f"max({_when(cond, 'max_age')})"


def bucket_edges_days(config: LifecycleConfig) -> tuple[int, ...]:
    """Return the age-bucket edges (days): every window, plus 30 and 60 for the trends."""
    return tuple(sorted({*config.features.windows_days, 30, 60}))


# Intermediate columns reused by several derived features; each is defined once, below.
N_PURCHASES = "n_purchases"
N_LOYALTY = "n_loyalty_signals"
N_SIGNUP = "_n_signup_events"
FIRST_PURCHASE_AGE = "_first_purchase_age"
LAST_PURCHASE_AGE = "_last_purchase_age"
REVENUE_MICRO = "_revenue_micro"
REFUND_MICRO = "_refund_micro"


def stage_code_sql(config: LifecycleConfig) -> str:
    """Return SQL for the event-based stage code (0 reach ... 4 loyalty) from the stage rules."""
    k = config.stages.retention_min_purchases
    return (
        f"CASE WHEN {N_PURCHASES} >= {k} AND {N_LOYALTY} > 0 THEN 4 "
        f"WHEN {N_PURCHASES} >= {k} THEN 3 "
        f"WHEN {N_PURCHASES} >= 1 THEN 2 "
        f"WHEN {N_SIGNUP} > 0 THEN 1 ELSE 0 END"
    )


def stage_entry_age_sql(config: LifecycleConfig) -> str:
    """Return SQL for the age (microseconds before the cutoff) of the stage's first event."""
    k = config.stages.retention_min_purchases
    return (
        f"CASE WHEN {N_PURCHASES} >= {k} AND {N_LOYALTY} > 0 "
        "THEN least(_kth_purchase_age, _first_loyalty_age) "
        f"WHEN {N_PURCHASES} >= {k} THEN _kth_purchase_age "
        f"WHEN {N_PURCHASES} >= 1 THEN {FIRST_PURCHASE_AGE} "
        f"WHEN {N_SIGNUP} > 0 THEN _first_signup_age ELSE _first_event_age END"
    )


def feature_definitions(config: LifecycleConfig) -> list[Feature]:
    """Return every feature definition, in output column order.

    Parameters
    ----------
    config
        The lifecycle config: windows, vocabulary and channels shape the column list.

    Returns
    -------
    list of Feature
        Column name, SQL aggregate, family and description for each feature.

    Examples
    --------
    >>> from features.config import LifecycleConfig
    >>> names = [f.name for f in feature_definitions(LifecycleConfig())]
    >>> names[:3]
    ['n_events', 'days_since_first_event', 'days_since_last_event']
    """
    windows = config.features.windows_days
    k = config.stages.retention_min_purchases
    mean_gap_us = (
        f"CASE WHEN {N_PURCHASES} >= 2 THEN "
        f"CAST({FIRST_PURCHASE_AGE} - {LAST_PURCHASE_AGE} AS DOUBLE) / ({N_PURCHASES} - 1) END"
    )
    var_gap = (
        "CASE WHEN _n_gaps >= 2 THEN CAST(_n_gaps * _gap_s2 - _gap_s1 * _gap_s1 AS DOUBLE) "
        f"/ (_n_gaps * (_n_gaps - 1)) / {DAY_US}.0 / {DAY_US}.0 END"
    )
    prev_30 = f"age_hi > {30 * DAY_US} AND age_hi <= {60 * DAY_US}"
    last_30 = _in_window(30)
    purchase_last_30 = _count(f"is_purchase AND {last_30}")
    revenue_last_30 = _sum_rev(f"is_purchase AND {last_30}")
    events_last_30 = _count(last_30)

    def intermediate(name: str, sql: str, scope: Literal["events", "purchases"]) -> Feature:
        return Feature(name, sql, "intermediate", "used by other features", scope)

    defs: list[Feature] = [
        intermediate("_first_event_age", _max_age(), "events"),
        intermediate(FIRST_PURCHASE_AGE, _max_age("is_purchase"), "events"),
        intermediate(LAST_PURCHASE_AGE, _min_age("is_purchase"), "events"),
        intermediate("_first_signup_age", _max_age("is_signup"), "events"),
        intermediate(N_SIGNUP, _count("is_signup"), "events"),
        intermediate("_first_loyalty_age", _max_age("is_loyalty"), "events"),
        intermediate(REVENUE_MICRO, _sum_rev("is_purchase"), "events"),
        intermediate(
            REFUND_MICRO,
            "0 - " + _sum_rev("is_refund"),
            "events",
        ),
        intermediate(
            "_kth_purchase_age", f"max({_when(f'purchase_rank = {k}', 'age_us')})", "purchases"
        ),
        intermediate("_n_gaps", "count(gap_us)", "purchases"),
        intermediate("_gap_s1", "sum(CAST(gap_us AS HUGEINT))", "purchases"),
        intermediate(
            "_gap_s2", "sum(CAST(gap_us AS HUGEINT) * CAST(gap_us AS HUGEINT))", "purchases"
        ),
        intermediate("_purchases_prev_30d", _count(f"is_purchase AND {prev_30}"), "events"),
        intermediate(
            "_revenue_prev_30d",
            _sum_rev(f"is_purchase AND {prev_30}"),
            "events",
        ),
        intermediate("_events_prev_30d", _count(prev_30), "events"),
        intermediate("_purchases_last_30d", purchase_last_30, "events"),
        intermediate("_revenue_last_30d", revenue_last_30, "events"),
        intermediate("_events_last_30d", events_last_30, "events"),
        Feature("n_events", _count(), "activity", "events of any type, all time"),
        Feature(
            "days_since_first_event",
            _days("_first_event_age"),
            "tenure",
            "days since the first event (tenure)",
            "derived",
        ),
        Feature(
            "days_since_last_event",
            _days(_min_age()),
            "recency",
            "days since the latest event of any type",
        ),
    ]
    defs += [
        Feature(
            f"n_events_{w}d",
            _count(_in_window(w)),
            "activity",
            f"events of any type in the last {w} days",
        )
        for w in windows
    ]
    defs += [
        Feature(N_PURCHASES, _count("is_purchase"), "frequency", "purchases, all time"),
        Feature(
            "revenue_total",
            _money(REVENUE_MICRO),
            "monetary",
            "purchase revenue, all time",
            "derived",
        ),
        Feature(
            "net_revenue_total",
            _money(f"{REVENUE_MICRO} - {REFUND_MICRO}"),
            "monetary",
            "purchase revenue less refunds, all time",
            "derived",
        ),
    ]
    for w in windows:
        defs.append(
            Feature(
                f"n_purchases_{w}d",
                _count(f"is_purchase AND {_in_window(w)}"),
                "frequency",
                f"purchases in the last {w} days",
            )
        )
        defs.append(
            Feature(
                f"revenue_{w}d",
                _money(_sum_rev(f"is_purchase AND {_in_window(w)}")),
                "monetary",
                f"purchase revenue in the last {w} days",
            )
        )
    defs += [
        Feature(
            "avg_order_value",
            f"CASE WHEN {N_PURCHASES} > 0 THEN {_money(REVENUE_MICRO)} / {N_PURCHASES} END",
            "monetary",
            "mean revenue per purchase",
            "derived",
        ),
        Feature(
            "max_order_value",
            _money(f"max({_when('is_purchase', 'max_rev')})"),
            "monetary",
            "largest single purchase",
        ),
        Feature(
            "days_since_last_purchase",
            _days(LAST_PURCHASE_AGE),
            "recency",
            "days since the latest purchase",
            "derived",
        ),
        Feature(
            "days_since_first_purchase",
            _days(FIRST_PURCHASE_AGE),
            "tenure",
            "days since the first purchase",
            "derived",
        ),
        Feature(
            "days_since_signup",
            _days("_first_signup_age"),
            "tenure",
            "days since sign-up",
            "derived",
        ),
        Feature(
            "mean_purchase_gap_days",
            f"{mean_gap_us} / {DAY_US}",
            "rhythm",
            "mean days between consecutive purchases",
            "derived",
        ),
        Feature(
            "var_purchase_gap_days",
            var_gap,
            "rhythm",
            "variance of days between consecutive purchases",
            "derived",
        ),
        Feature(
            "purchase_gap_ratio",
            f"CAST({LAST_PURCHASE_AGE} AS DOUBLE) / nullif({mean_gap_us}, 0)",
            "rhythm",
            "days since the last purchase relative to the usual gap",
            "derived",
        ),
        Feature(
            "purchase_trend_30d",
            "_purchases_last_30d - _purchases_prev_30d",
            "trend",
            "purchases in the last 30 days minus the 30 days before",
            "derived",
        ),
        Feature(
            "revenue_trend_30d",
            _money("_revenue_last_30d - _revenue_prev_30d"),
            "trend",
            "revenue in the last 30 days minus the 30 days before",
            "derived",
        ),
        Feature(
            "activity_trend_30d",
            "_events_last_30d - _events_prev_30d",
            "trend",
            "events in the last 30 days minus the 30 days before",
            "derived",
        ),
        Feature(
            "n_refunds",
            _count("is_refund"),
            "refunds",
            "refunds, all time",
        ),
        Feature(
            "refund_amount", _money(REFUND_MICRO), "refunds", "refunded amount, all time", "derived"
        ),
        Feature(
            "refund_rate",
            f"CASE WHEN {N_PURCHASES} > 0 THEN CAST(n_refunds AS DOUBLE) / {N_PURCHASES} END",
            "refunds",
            "refunds per purchase",
            "derived",
        ),
        Feature(
            "n_campaign_exposures",
            _count("is_exposure"),
            "campaigns",
            "campaign offers received",
        ),
        Feature(
            "n_campaign_responses",
            _count("is_purchase AND has_campaign"),
            "campaigns",
            "purchases attributed to a campaign",
        ),
        Feature(
            "days_since_last_campaign_exposure",
            _days(_min_age("is_exposure")),
            "campaigns",
            "days since the latest campaign offer",
        ),
        Feature(
            N_LOYALTY,
            _count("is_loyalty"),
            "advocacy",
            "referrals, loyalty-programme joins and reviews",
        ),
    ]
    for event_type in config.vocabulary:
        suffix = _ident(event_type)
        defs.append(
            Feature(
                f"n_{suffix}",
                _count(f"event_type = {_quote(event_type)}"),
                "activity",
                f"'{event_type}' events, all time",
            )
        )
        defs.append(
            Feature(
                f"n_{suffix}_30d",
                _count(f"event_type = {_quote(event_type)} AND {last_30}"),
                "activity",
                f"'{event_type}' events in the last 30 days",
            )
        )
    channels = config.features.channels
    for channel in channels:
        defs.append(
            Feature(
                f"n_channel_{_ident(channel)}",
                _count(f"channel = {_quote(channel)}"),
                "channel",
                f"events on the '{channel}' channel",
            )
        )
    listed = ", ".join(_quote(c) for c in channels) or "NULL"
    defs.append(
        Feature(
            "n_channel_other",
            _count(f"channel IS NOT NULL AND channel NOT IN ({listed})"),
            "channel",
            "events on any other channel",
        )
    )
    defs += [
        Feature("stage_code", stage_code_sql(config), "stage", "lifecycle stage, 0-4", "derived"),
        Feature(
            "days_in_stage",
            _days(stage_entry_age_sql(config)),
            "stage",
            "days since the customer entered the current stage",
            "derived",
        ),
    ]
    names = [f.name for f in defs]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"feature names collide: {sorted(duplicated)}; rename a channel or type")
    return defs
