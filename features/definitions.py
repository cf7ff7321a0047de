"""Point-in-time feature definitions: one SQL expression per feature, the single source of truth.

Each :class:`Feature` is an aggregate over the per-event relation ``e`` that
:mod:`features.build` prepares for one cutoff ``T``. ``e`` holds only events strictly before
``T``, with these derived columns:

``age_us``
    ``T - event_ts`` in microseconds (BIGINT, always > 0).
``rev_micro``
    revenue in millionths (BIGINT), so sums are exact and independent of row order.
``is_purchase``, ``is_signup``, ``is_loyalty``
    booleans from the stage rules.
``purchase_rank``
    1 for a customer's first purchase, 2 for the second, ... (ties share a timestamp,
    so any order among them gives the same values).
``gap_us``
    for a purchase, microseconds since the customer's previous purchase (NULL for the first).

The expressions are plain SQL aggregates (``count``, ``sum``, ``min``, ``max`` with ``FILTER``)
that DuckDB runs today and Spark SQL runs as well; everything dialect-specific lives in the
base relation of :mod:`features.build`. Integer arithmetic keeps results byte-identical
whatever the thread count or the order of the input rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from features.config import LifecycleConfig

DAY_US = 86_400_000_000
"""Microseconds in a (24-hour) day: windows are absolute durations, not calendar days."""


@dataclass(frozen=True)
class Feature:
    """One feature: its column name, SQL aggregate, family and a plain description."""

    name: str
    sql: str
    family: str
    description: str


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
    return f"age_us <= {days * DAY_US}"


# Aggregates reused inside several definitions; each is still defined exactly once here.
N_PURCHASES = "count(*) FILTER (WHERE is_purchase)"
FIRST_PURCHASE_AGE = "max(age_us) FILTER (WHERE is_purchase)"
LAST_PURCHASE_AGE = "min(age_us) FILTER (WHERE is_purchase)"
REVENUE_MICRO = "coalesce(sum(rev_micro) FILTER (WHERE is_purchase), 0)"
REFUND_MICRO = "coalesce(-sum(rev_micro) FILTER (WHERE event_type = 'refund'), 0)"
N_LOYALTY = "count(*) FILTER (WHERE is_loyalty)"
N_SIGNUP = "count(*) FILTER (WHERE is_signup)"
SECOND_PURCHASE_AGE = "max(age_us) FILTER (WHERE purchase_rank = 2)"
FIRST_LOYALTY_AGE = "max(age_us) FILTER (WHERE is_loyalty)"
FIRST_SIGNUP_AGE = "max(age_us) FILTER (WHERE is_signup)"


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
    kth_purchase_age = f"max(age_us) FILTER (WHERE purchase_rank = {k})"
    return (
        f"CASE WHEN {N_PURCHASES} >= {k} AND {N_LOYALTY} > 0 "
        f"THEN least({kth_purchase_age}, {FIRST_LOYALTY_AGE}) "
        f"WHEN {N_PURCHASES} >= {k} THEN {kth_purchase_age} "
        f"WHEN {N_PURCHASES} >= 1 THEN {FIRST_PURCHASE_AGE} "
        f"WHEN {N_SIGNUP} > 0 THEN {FIRST_SIGNUP_AGE} ELSE max(age_us) END"
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
    mean_gap_us = (
        f"CASE WHEN {N_PURCHASES} >= 2 THEN "
        f"CAST({FIRST_PURCHASE_AGE} - {LAST_PURCHASE_AGE} AS DOUBLE) / ({N_PURCHASES} - 1) END"
    )
    n_gaps = "count(gap_us) FILTER (WHERE is_purchase)"
    s1 = "sum(CAST(gap_us AS HUGEINT)) FILTER (WHERE is_purchase)"
    s2 = "sum(CAST(gap_us AS HUGEINT) * CAST(gap_us AS HUGEINT)) FILTER (WHERE is_purchase)"
    var_gap = (
        f"CASE WHEN {n_gaps} >= 2 THEN CAST({n_gaps} * {s2} - {s1} * {s1} AS DOUBLE) "
        f"/ ({n_gaps} * ({n_gaps} - 1)) / {DAY_US}.0 / {DAY_US}.0 END"
    )
    prev_30 = f"age_us > {30 * DAY_US} AND age_us <= {60 * DAY_US}"
    last_30 = _in_window(30)

    defs: list[Feature] = [
        Feature("n_events", "count(*)", "activity", "events of any type, all time"),
        Feature(
            "days_since_first_event",
            _days("max(age_us)"),
            "tenure",
            "days since the first event (tenure)",
        ),
        Feature(
            "days_since_last_event",
            _days("min(age_us)"),
            "recency",
            "days since the latest event of any type",
        ),
    ]
    defs += [
        Feature(
            f"n_events_{w}d",
            f"count(*) FILTER (WHERE {_in_window(w)})",
            "activity",
            f"events of any type in the last {w} days",
        )
        for w in windows
    ]
    defs += [
        Feature("n_purchases", N_PURCHASES, "frequency", "purchases, all time"),
        Feature("revenue_total", _money(REVENUE_MICRO), "monetary", "purchase revenue, all time"),
        Feature(
            "net_revenue_total",
            _money(f"{REVENUE_MICRO} - {REFUND_MICRO}"),
            "monetary",
            "purchase revenue less refunds, all time",
        ),
    ]
    for w in windows:
        defs.append(
            Feature(
                f"n_purchases_{w}d",
                f"count(*) FILTER (WHERE is_purchase AND {_in_window(w)})",
                "frequency",
                f"purchases in the last {w} days",
            )
        )
        defs.append(
            Feature(
                f"revenue_{w}d",
                _money(
                    f"coalesce(sum(rev_micro) FILTER (WHERE is_purchase AND {_in_window(w)}), 0)"
                ),
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
        ),
        Feature(
            "max_order_value",
            _money("max(rev_micro) FILTER (WHERE is_purchase)"),
            "monetary",
            "largest single purchase",
        ),
        Feature(
            "days_since_last_purchase",
            _days(LAST_PURCHASE_AGE),
            "recency",
            "days since the latest purchase",
        ),
        Feature(
            "days_since_first_purchase",
            _days(FIRST_PURCHASE_AGE),
            "tenure",
            "days since the first purchase",
        ),
        Feature("days_since_signup", _days(FIRST_SIGNUP_AGE), "tenure", "days since sign-up"),
        Feature(
            "mean_purchase_gap_days",
            f"{mean_gap_us} / {DAY_US}",
            "rhythm",
            "mean days between consecutive purchases",
        ),
        Feature(
            "var_purchase_gap_days",
            var_gap,
            "rhythm",
            "variance of days between consecutive purchases",
        ),
        Feature(
            "purchase_gap_ratio",
            f"CAST({LAST_PURCHASE_AGE} AS DOUBLE) / nullif({mean_gap_us}, 0)",
            "rhythm",
            "days since the last purchase relative to the usual gap",
        ),
        Feature(
            "purchase_trend_30d",
            f"count(*) FILTER (WHERE is_purchase AND {last_30}) "
            f"- count(*) FILTER (WHERE is_purchase AND {prev_30})",
            "trend",
            "purchases in the last 30 days minus the 30 days before",
        ),
        Feature(
            "revenue_trend_30d",
            _money(
                f"coalesce(sum(rev_micro) FILTER (WHERE is_purchase AND {last_30}), 0) "
                f"- coalesce(sum(rev_micro) FILTER (WHERE is_purchase AND {prev_30}), 0)"
            ),
            "trend",
            "revenue in the last 30 days minus the 30 days before",
        ),
        Feature(
            "activity_trend_30d",
            f"count(*) FILTER (WHERE {last_30}) - count(*) FILTER (WHERE {prev_30})",
            "trend",
            "events in the last 30 days minus the 30 days before",
        ),
        Feature(
            "n_refunds",
            "count(*) FILTER (WHERE event_type = 'refund')",
            "refunds",
            "refunds, all time",
        ),
        Feature("refund_amount", _money(REFUND_MICRO), "refunds", "refunded amount, all time"),
        Feature(
            "refund_rate",
            f"CASE WHEN {N_PURCHASES} > 0 THEN "
            f"CAST(count(*) FILTER (WHERE event_type = 'refund') AS DOUBLE) / {N_PURCHASES} END",
            "refunds",
            "refunds per purchase",
        ),
        Feature(
            "n_campaign_exposures",
            "count(*) FILTER (WHERE event_type = 'campaign_exposure')",
            "campaigns",
            "campaign offers received",
        ),
        Feature(
            "n_campaign_responses",
            "count(*) FILTER (WHERE is_purchase AND campaign_id IS NOT NULL)",
            "campaigns",
            "purchases attributed to a campaign",
        ),
        Feature(
            "days_since_last_campaign_exposure",
            _days("min(age_us) FILTER (WHERE event_type = 'campaign_exposure')"),
            "campaigns",
            "days since the latest campaign offer",
        ),
        Feature(
            "n_loyalty_signals",
            N_LOYALTY,
            "advocacy",
            "referrals, loyalty-programme joins and reviews",
        ),
    ]
    for event_type in config.vocabulary:
        suffix = _ident(event_type)
        defs.append(
            Feature(
                f"n_{suffix}",
                f"count(*) FILTER (WHERE event_type = {_quote(event_type)})",
                "activity",
                f"'{event_type}' events, all time",
            )
        )
        defs.append(
            Feature(
                f"n_{suffix}_30d",
                f"count(*) FILTER (WHERE event_type = {_quote(event_type)} AND {last_30})",
                "activity",
                f"'{event_type}' events in the last 30 days",
            )
        )
    channels = config.features.channels
    for channel in channels:
        defs.append(
            Feature(
                f"n_channel_{_ident(channel)}",
                f"count(*) FILTER (WHERE channel = {_quote(channel)})",
                "channel",
                f"events on the '{channel}' channel",
            )
        )
    listed = ", ".join(_quote(c) for c in channels) or "NULL"
    defs.append(
        Feature(
            "n_channel_other",
            f"count(*) FILTER (WHERE channel IS NOT NULL AND channel NOT IN ({listed}))",
            "channel",
            "events on any other channel",
        )
    )
    defs += [
        Feature("stage_code", stage_code_sql(config), "stage", "lifecycle stage, 0-4"),
        Feature(
            "days_in_stage",
            _days(stage_entry_age_sql(config)),
            "stage",
            "days since the customer entered the current stage",
        ),
    ]
    names = [f.name for f in defs]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"feature names collide: {sorted(duplicated)}; rename a channel or type")
    return defs
