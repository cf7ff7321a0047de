"""Point-in-time feature definitions: one SQL expression per feature, the single source of truth.

Each :class:`Feature` has a scope. ``events`` features are aggregates over ``g``, the events
strictly before the cutoff ``T`` grouped by customer, event type, channel, campaign flag and
age bucket (the bucket edges are the feature windows, so a window holds whole groups);
``purchases`` features are aggregates over ``pur``, one row per purchase with its sequence
columns; ``derived`` features are expressions over other features' columns (by name). Columns
whose name starts with ``_`` are intermediate and not part of the output. ``scores`` features
(the RFM scores, :func:`rfm_features`) have no SQL: :mod:`lifecycle.features.rfm` adds them.

Each output feature also states its meaning where it is defined (see :class:`Feature`): its
kind, whether it is a whole number and never negative, its bounds, its churn direction
(:func:`churn_monotone` reads them for the churn model) and its sentence key with parameters
(the driver sentence and label in :mod:`lifecycle.features.glossary`). Nothing downstream reads
these
facts from a feature's name.

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
relations of :mod:`lifecycle.features.build`. Integer arithmetic keeps results byte-identical
whatever
the thread count or the order of the input rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from lifecycle.features.config import LifecycleConfig
from lifecycle.features.glossary import text
from lifecycle.features.schema import STAGES

DAY_US = 86_400_000_000
"""Microseconds in a (24-hour) day: windows are absolute durations, not calendar days."""

Kind: TypeAlias = Literal[
    "count",
    "count_change",
    "days",
    "days_squared",
    "money",
    "money_change",
    "share",
    "ratio",
    "score",
    "code",
]
"""What a feature's value is, which says how it is written for people:

``count`` (events, purchases), ``count_change`` (a count minus the previous window's),
``days`` (a duration), ``days_squared`` (a variance of durations), ``money`` (an amount in the
log's currency), ``money_change`` (an amount minus the previous window's), ``share`` (a rate
written as a percentage), ``ratio`` (a multiple of a reference), ``score`` (an RFM score,
0 = no purchase) and ``code`` (a lifecycle stage code, 0 reach ... 4 loyalty)."""

Direction: TypeAlias = Literal[-1, 0, 1]


@dataclass(frozen=True)
class Feature:
    """One feature: its column name, SQL, family, description, scope and meaning.

    The meaning is stated where the feature is defined, so nothing downstream re-derives it
    from the name: ``kind`` (how its value reads), ``integer`` and ``non_negative`` (what a
    given value must satisfy), ``bounds`` (inclusive range, for codes and scores),
    ``churn_direction`` (+1: more of it never lowers churn risk, -1: never raises it, 0: no
    constraint) and ``sentence`` with ``params`` (the key of its driver sentence and label in
    :mod:`lifecycle.features.glossary`, and the values they quote: window days, event type,
    channel).
    ``marketing_action`` is true for a feature that counts what marketing did to the customer
    (campaign offers sent), not what the customer did: it is not a lever, its association with
    a prediction is not an effect (customers are chosen for offers), and it never justifies an
    action. A customer's response to an offer (a redemption, a campaign purchase) is behaviour
    and is not one.
    Intermediate columns have no kind and no sentence.
    """

    name: str
    sql: str
    family: str
    description: str
    scope: Literal["events", "purchases", "derived", "scores"] = "events"
    kind: Kind | None = None
    integer: bool = False
    non_negative: bool = False
    bounds: tuple[int, int] | None = None
    churn_direction: Direction = 0
    sentence: str = ""
    params: Mapping[str, str | int] = field(default_factory=dict, hash=False)
    marketing_action: bool = False

    @property
    def internal(self) -> bool:
        """Whether the column is an intermediate that is not part of the output."""
        return self.name.startswith("_")


def _feature(
    name: str,
    sql: str,
    family: str,
    kind: Kind,
    sentence: str,
    scope: Literal["events", "purchases", "derived", "scores"] = "events",
    *,
    params: Mapping[str, str | int] | None = None,
    non_negative: bool | None = None,
    bounds: tuple[int, int] | None = None,
    churn_direction: Direction = 0,
    marketing_action: bool = False,
) -> Feature:
    """Build an output feature: its description is its English label in the glossary.

    Counts, codes and scores are whole numbers; counts are never negative (and codes and
    scores stay within their bounds); other kinds say ``non_negative`` themselves.
    """
    values = dict(params or {})
    whole = kind in ("count", "code", "score")
    return Feature(
        name,
        sql,
        family,
        text(f"label.{sentence}", "en", **values),
        scope,
        kind=kind,
        integer=whole,
        non_negative=whole if non_negative is None else non_negative,
        bounds=bounds,
        churn_direction=churn_direction,
        sentence=sentence,
        params=values,
        marketing_action=marketing_action,
    )


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
PURCHASE_DAYS = "_purchase_days"


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
        Column name, SQL aggregate, family, description and meaning (kind, whole number or
        not, sign, churn direction, sentence key) for each feature.

    Examples
    --------
    >>> from lifecycle.features.config import LifecycleConfig
    >>> names = [f.name for f in feature_definitions(LifecycleConfig()) if not f.internal]
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
    redeemed_types = ", ".join(_quote(v) for v in config.features.redemption_events) or "NULL"
    redeemed = f"event_type IN ({redeemed_types})"

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
        # A purchase day is a 24-hour period counted back from the cutoff (calendar days when
        # the cutoff is midnight): the BTYD models' unit of repeat business.
        intermediate(
            PURCHASE_DAYS, f"count(DISTINCT floor(CAST(age_us AS DOUBLE) / {DAY_US}))", "purchases"
        ),
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
        _feature("n_events", _count(), "activity", "count", "events_total"),
        _feature(
            "days_since_first_event",
            _days("_first_event_age"),
            "tenure",
            "days",
            "first_event_ago",
            "derived",
            non_negative=True,
        ),
        _feature(
            "days_since_last_event",
            _days(_min_age()),
            "recency",
            "days",
            "last_event_ago",
            non_negative=True,
            churn_direction=1,
        ),
    ]
    # More recent activity never raises churn risk: moving a purchase closer to the cutoff
    # raises the counts of the windows up to the active period (and lowers the recencies).
    recent: dict[int, Direction] = {w: -1 if w <= config.stages.active_days else 0 for w in windows}
    defs += [
        _feature(
            f"n_events_{w}d",
            _count(_in_window(w)),
            "activity",
            "count",
            "events_window",
            params={"window": w},
            churn_direction=recent[w],
        )
        for w in windows
    ]
    defs += [
        _feature(N_PURCHASES, _count("is_purchase"), "frequency", "count", "purchases_total"),
        _feature(
            "revenue_total", _money(REVENUE_MICRO), "monetary", "money", "revenue_total", "derived"
        ),
        _feature(
            "net_revenue_total",
            _money(f"{REVENUE_MICRO} - {REFUND_MICRO}"),
            "monetary",
            "money",
            "net_revenue_total",
            "derived",
        ),
    ]
    for w in windows:
        defs.append(
            _feature(
                f"n_purchases_{w}d",
                _count(f"is_purchase AND {_in_window(w)}"),
                "frequency",
                "count",
                "purchases_window",
                params={"window": w},
                churn_direction=recent[w],
            )
        )
        defs.append(
            _feature(
                f"revenue_{w}d",
                _money(_sum_rev(f"is_purchase AND {_in_window(w)}")),
                "monetary",
                "money",
                "revenue_window",
                params={"window": w},
                churn_direction=recent[w],
            )
        )
    defs += [
        _feature(
            "avg_order_value",
            f"CASE WHEN {N_PURCHASES} > 0 THEN {_money(REVENUE_MICRO)} / {N_PURCHASES} END",
            "monetary",
            "money",
            "avg_order_value",
            "derived",
        ),
        _feature(
            "max_order_value",
            _money(f"max({_when('is_purchase', 'max_rev')})"),
            "monetary",
            "money",
            "max_order_value",
        ),
        _feature(
            "days_since_last_purchase",
            _days(LAST_PURCHASE_AGE),
            "recency",
            "days",
            "last_purchase_ago",
            "derived",
            non_negative=True,
            churn_direction=1,
        ),
        _feature(
            "days_since_first_purchase",
            _days(FIRST_PURCHASE_AGE),
            "tenure",
            "days",
            "first_purchase_ago",
            "derived",
            non_negative=True,
        ),
        _feature(
            "days_since_signup",
            _days("_first_signup_age"),
            "tenure",
            "days",
            "signup_ago",
            "derived",
            non_negative=True,
        ),
        _feature(
            "mean_purchase_gap_days",
            f"{mean_gap_us} / {DAY_US}",
            "rhythm",
            "days",
            "mean_purchase_gap",
            "derived",
            non_negative=True,
        ),
        _feature(
            "var_purchase_gap_days",
            var_gap,
            "rhythm",
            "days_squared",
            "purchase_gap_spread",
            "derived",
            non_negative=True,
        ),
        _feature(
            "purchase_gap_ratio",
            f"CAST({LAST_PURCHASE_AGE} AS DOUBLE) / nullif({mean_gap_us}, 0)",
            "rhythm",
            "ratio",
            "purchase_gap_ratio",
            "derived",
            non_negative=True,
            churn_direction=1,
        ),
        _feature(
            "repeat_purchase_days",
            f"CASE WHEN {PURCHASE_DAYS} >= 1 THEN {PURCHASE_DAYS} - 1 ELSE 0 END",
            "frequency",
            "count",
            "repeat_purchase_days",
            "derived",
        ),
        _feature(
            "purchases_per_30d",
            f"CASE WHEN {N_PURCHASES} > 0 THEN 30.0 * {N_PURCHASES} / "
            f"greatest(CAST(_first_event_age AS DOUBLE) / {DAY_US}, 1.0) END",
            "rhythm",
            "ratio",
            "purchase_rate",
            "derived",
            non_negative=True,
        ),
        _feature(
            "purchase_trend_30d",
            "_purchases_last_30d - _purchases_prev_30d",
            "trend",
            "count_change",
            "purchase_trend",
            "derived",
            params={"window": 30},
            churn_direction=-1,
        ),
        _feature(
            "revenue_trend_30d",
            _money("_revenue_last_30d - _revenue_prev_30d"),
            "trend",
            "money_change",
            "revenue_trend",
            "derived",
            params={"window": 30},
            churn_direction=-1,
        ),
        _feature(
            "activity_trend_30d",
            "_events_last_30d - _events_prev_30d",
            "trend",
            "count_change",
            "activity_trend",
            "derived",
            params={"window": 30},
            churn_direction=-1,
        ),
        _feature("n_refunds", _count("is_refund"), "refunds", "count", "refunds_total"),
        _feature(
            "refund_amount", _money(REFUND_MICRO), "refunds", "money", "refund_amount", "derived"
        ),
        _feature(
            "refund_rate",
            f"CASE WHEN {N_PURCHASES} > 0 THEN CAST(n_refunds AS DOUBLE) / {N_PURCHASES} END",
            "refunds",
            "share",
            "refund_rate",
            "derived",
        ),
        _feature(
            "n_campaign_exposures",
            _count("is_exposure"),
            "campaigns",
            "count",
            "campaign_offers",
            marketing_action=True,
        ),
        _feature(
            "n_campaign_responses",
            _count("is_purchase AND has_campaign"),
            "campaigns",
            "count",
            "campaign_purchases",
        ),
        _feature(
            "days_since_last_campaign_exposure",
            _days(_min_age("is_exposure")),
            "campaigns",
            "days",
            "last_campaign_offer_ago",
            marketing_action=True,
        ),
        # Redemptions (a coupon or offer used) are a response role of their own, in the
        # event types of features.redemption_events, whether or not a purchase came with them.
        _feature("n_offer_redemptions", _count(redeemed), "campaigns", "count", "redemptions"),
        _feature(
            "n_offer_redemptions_30d",
            _count(f"{redeemed} AND {last_30}"),
            "campaigns",
            "count",
            "redemptions_window",
            params={"window": 30},
        ),
        _feature(
            "offer_redemption_rate",
            "CASE WHEN n_campaign_exposures > 0 "
            "THEN CAST(n_offer_redemptions AS DOUBLE) / n_campaign_exposures END",
            "campaigns",
            "share",
            "redemption_rate",
            "derived",
            non_negative=True,
        ),
        _feature(N_LOYALTY, _count("is_loyalty"), "advocacy", "count", "loyalty_signals"),
    ]
    exposures = set(config.features.exposure_events)
    for event_type in config.vocabulary:
        suffix = _ident(event_type)
        is_type = f"event_type = {_quote(event_type)}"
        sent = event_type in exposures  # an exposure is an offer marketing sent
        defs.append(
            _feature(
                f"n_{suffix}",
                _count(is_type),
                "activity",
                "count",
                "event_total",
                params={"event": event_type},
                marketing_action=sent,
            )
        )
        defs.append(
            _feature(
                f"n_{suffix}_30d",
                _count(f"{is_type} AND {last_30}"),
                "activity",
                "count",
                "event_window",
                params={"event": event_type, "window": 30},
                marketing_action=sent,
            )
        )
    channels = config.features.channels
    for channel in channels:
        defs.append(
            _feature(
                f"n_channel_{_ident(channel)}",
                _count(f"channel = {_quote(channel)}"),
                "channel",
                "count",
                "channel",
                params={"channel": channel},
            )
        )
    listed = ", ".join(_quote(c) for c in channels) or "NULL"
    defs.append(
        _feature(
            "n_channel_other",
            _count(f"channel IS NOT NULL AND channel NOT IN ({listed})"),
            "channel",
            "count",
            "channel_other",
        )
    )
    defs += [
        _feature(
            "stage_code",
            stage_code_sql(config),
            "stage",
            "code",
            "stage",
            "derived",
            bounds=(0, len(STAGES) - 1),
        ),
        _feature(
            "days_in_stage",
            _days(stage_entry_age_sql(config)),
            "stage",
            "days",
            "days_in_stage",
            "derived",
        ),
    ]
    names = [f.name for f in defs]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"feature names collide: {sorted(duplicated)}; rename a channel or type")
    return defs


RFM_FEATURES: tuple[str, ...] = ("rfm_r", "rfm_f", "rfm_m")
"""The RFM score columns :mod:`lifecycle.features.rfm` adds after the SQL (see
:func:`rfm_features`)."""


def rfm_features(config: LifecycleConfig) -> list[Feature]:
    """Return the RFM scores as features: computed by :mod:`lifecycle.features.rfm`, not by SQL.

    Each is a whole score from 1 to ``config.rfm.bins`` against the reference population, 0
    for a customer without a purchase. A better recency score never raises churn risk.

    Examples
    --------
    >>> [(f.name, f.bounds) for f in rfm_features(LifecycleConfig())][:1]
    [('rfm_r', (0, 5))]
    """
    bounds = (0, config.rfm.bins)
    families = ("recency", "frequency", "monetary")
    return [
        _feature(
            name,
            "",
            family,
            "score",
            name,
            "scores",
            bounds=bounds,
            churn_direction=-1 if name == "rfm_r" else 0,
        )
        for name, family in zip(RFM_FEATURES, families, strict=True)
    ]


def model_features(config: LifecycleConfig) -> list[Feature]:
    """Return the features a model takes, in column order: the output definitions, then RFM.

    Parameters
    ----------
    config
        The lifecycle config.

    Returns
    -------
    list of Feature
        The same columns as :func:`lifecycle.features.build.feature_columns`, each with its meaning.

    Examples
    --------
    >>> [f.name for f in model_features(LifecycleConfig())][-3:]
    ['rfm_r', 'rfm_f', 'rfm_m']
    """
    outputs = [f for f in feature_definitions(config) if not f.internal]
    return [*outputs, *rfm_features(config)]


def churn_monotone(config: LifecycleConfig) -> dict[str, int]:
    """Return the churn model's monotone constraints: feature name -> its churn direction.

    More recent activity never raises churn risk: recency grows it (+1); the counts and
    revenue of the windows up to ``stages.active_days``, the 30-day trends and the R score
    shrink it (-1). Features without a direction are left out.

    Parameters
    ----------
    config
        The lifecycle config (its windows and active period choose the windowed columns).

    Returns
    -------
    dict
        Feature name -> +1 or -1.

    Examples
    --------
    >>> monotone = churn_monotone(LifecycleConfig())
    >>> monotone["days_since_last_purchase"], monotone["n_purchases_90d"], monotone["rfm_r"]
    (1, -1, -1)
    >>> "n_purchases_365d" in monotone
    False
    """
    return {f.name: f.churn_direction for f in model_features(config) if f.churn_direction}
