"""RFM scoring and named segments.

Scores are quantile scores 1..bins (5 by default) against a reference population: the
customers with a purchase at the same cutoff. A value's quantile is the share of the population
strictly below it, so ties share the lowest score of their block and scores never depend on row
order. Real logs tie heavily on frequency (most customers buy once): one-time buyers all score
F = 1, which keeps segments such as New and About to sleep reachable. Segments follow the
widely used R x FM grid (FM = the rounded mean of the F and M scores).

Recency is scored either on the days since the last purchase (``"absolute"``, the default) or
on those days relative to the customer's own rhythm (``"rhythm"``: days since the last purchase
divided by the customer's mean gap between purchases; see :func:`recency_values`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lifecycle.features.build import EventSource
    from lifecycle.features.config import LifecycleConfig

Recency: TypeAlias = Literal["absolute", "rhythm"]
"""How R is measured: days since the last purchase, or those days over the customer's own gap."""

NO_PURCHASE = "No purchase yet"

# (segment, R range, FM range) on the 1-5 scale; every cell of the 5 x 5 grid is in exactly one.
SEGMENT_RULES: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = (
    ("Champions", (5, 5), (4, 5)),
    ("Loyal", (3, 4), (4, 5)),
    ("Potential loyalist", (4, 5), (2, 3)),
    ("New", (5, 5), (1, 1)),
    ("Promising", (4, 4), (1, 1)),
    ("Need attention", (3, 3), (2, 3)),
    ("About to sleep", (3, 3), (1, 1)),
    ("Cannot lose them", (1, 1), (5, 5)),
    ("At risk", (2, 2), (3, 5)),
    ("At risk", (1, 1), (3, 4)),
    ("Hibernating", (2, 2), (1, 2)),
    ("Lost", (1, 1), (1, 2)),
)
SEGMENTS: tuple[str, ...] = tuple(dict.fromkeys(rule[0] for rule in SEGMENT_RULES))


def quantile_score(values: np.ndarray, reference: np.ndarray, bins: int = 5) -> np.ndarray:
    """Score each value 1..bins by the share of the reference strictly below it.

    Parameters
    ----------
    values
        Values to score (higher is better); NaN gives score 0.
    reference
        The population the quantiles come from (NaN ignored).
    bins
        Number of scores.

    Returns
    -------
    numpy.ndarray
        Integer scores, ties sharing one score.

    Examples
    --------
    >>> quantile_score(np.array([1.0, 5.0, 9.0]), np.arange(10.0)).tolist()
    [1, 3, 5]
    """
    ref = np.sort(reference[~np.isnan(reference)])
    if ref.size == 0:
        return np.zeros(len(values), dtype=np.int64)
    below = np.searchsorted(ref, values, side="left")
    scores = np.minimum(bins, 1 + (bins * below) // ref.size).astype(np.int64)
    return np.where(np.isnan(values), 0, scores)


def rfm_segment(r: np.ndarray, f: np.ndarray, m: np.ndarray, bins: int = 5) -> np.ndarray:
    """Name the segment of each customer from R, F and M scores (0 = no purchase).

    Examples
    --------
    >>> rfm_segment(np.array([5, 1, 0]), np.array([5, 1, 0]), np.array([4, 2, 0])).tolist()
    ['Champions', 'Lost', 'No purchase yet']
    """

    def to_five(score: np.ndarray) -> np.ndarray:
        return np.ceil(np.asarray(score) * 5 / bins).astype(np.int64)

    r5 = to_five(r)
    fm5 = np.floor((to_five(f) + to_five(m)) / 2 + 0.5).astype(np.int64)
    names = np.full(len(r5), NO_PURCHASE, dtype=object)
    assigned = r5 == 0
    for name, (r_lo, r_hi), (fm_lo, fm_hi) in SEGMENT_RULES:
        hit = ~assigned & (r5 >= r_lo) & (r5 <= r_hi) & (fm5 >= fm_lo) & (fm5 <= fm_hi)
        names[hit] = name
        assigned |= hit
    return names


def typical_gap_days(features: pd.DataFrame) -> float:
    """Median mean gap between purchases over a population's repeat buyers, in days.

    The rhythm a one-time buyer is measured against under ``recency="rhythm"``; 1.0 when
    the population holds no repeat buyer with a positive gap (R then orders by plain days).

    Examples
    --------
    >>> typical_gap_days(pd.DataFrame({"mean_purchase_gap_days": [10.0, 30.0, None, 0.0]}))
    20.0
    """
    gaps = features["mean_purchase_gap_days"].to_numpy(dtype=float, na_value=np.nan)
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    return float(np.median(gaps)) if gaps.size else 1.0


def recency_values(
    features: pd.DataFrame, recency: Recency = "absolute", typical_gap: float | None = None
) -> np.ndarray:
    """Return the recency R is scored on (lower is more recent), NaN for non-buyers.

    Parameters
    ----------
    features
        Feature rows with ``days_since_last_purchase`` (and ``mean_purchase_gap_days`` for
        ``"rhythm"``).
    recency
        ``"absolute"``: days since the last purchase. ``"rhythm"``: those days divided by the
        customer's own mean gap between purchases, so a customer who buys every 60 days and
        last bought 61 days ago is about one gap late, not two months gone; a one-time buyer
        (no gap yet) is measured against ``typical_gap``.
    typical_gap
        Days that stand in for a missing or zero gap; default :func:`typical_gap_days` of
        ``features`` (pass the reference population's to score on its scale).

    Returns
    -------
    numpy.ndarray
        One float per row.

    Examples
    --------
    >>> f = pd.DataFrame({"days_since_last_purchase": [61.0, 20.0, None],
    ...                   "mean_purchase_gap_days": [60.0, None, None]})
    >>> recency_values(f, "rhythm", typical_gap=10.0).round(2).tolist()
    [1.02, 2.0, nan]
    """
    days = features["days_since_last_purchase"].to_numpy(dtype=float, na_value=np.nan)
    if recency == "absolute":
        return days
    if recency != "rhythm":
        raise ValueError(f"rfm recency must be 'absolute' or 'rhythm', not {recency!r}")
    if "mean_purchase_gap_days" not in features.columns:
        raise ValueError(
            "rhythm recency needs the column mean_purchase_gap_days (a feature frame of "
            "build_features); the frame given lacks it"
        )
    if typical_gap is None:
        typical_gap = typical_gap_days(features)
    gaps = features["mean_purchase_gap_days"].to_numpy(dtype=float, na_value=np.nan)
    gaps = np.where(np.isfinite(gaps) & (gaps > 0), gaps, typical_gap)
    return days / gaps


def _rfm_inputs(
    features: pd.DataFrame, recency: Recency = "absolute", typical_gap: float | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Buyers mask and the three dimensions (higher is better), NaN for non-buyers."""
    buyers = features["n_purchases"].to_numpy() > 0
    dims = {
        "rfm_r": -recency_values(features, recency, typical_gap),
        "rfm_f": features["n_purchases"].to_numpy(dtype=float),
        "rfm_m": features["net_revenue_total"].to_numpy(dtype=float),
    }
    return buyers, {name: np.where(buyers, values, np.nan) for name, values in dims.items()}


def rfm_columns(
    features: pd.DataFrame,
    bins: int = 5,
    reference: pd.DataFrame | None = None,
    recency: Recency = "absolute",
) -> pd.DataFrame:
    """Return ``rfm_r``, ``rfm_f``, ``rfm_m`` and ``rfm_segment`` for a feature frame.

    Scores are relative to the customers with a purchase at the same cutoff: recency from
    ``days_since_last_purchase`` (more recent scores higher), frequency from ``n_purchases``,
    monetary from ``net_revenue_total``. Customers without a purchase get 0 and
    ``"No purchase yet"``.

    Parameters
    ----------
    features
        Output of :func:`lifecycle.features.build.build_features` (needs ``cutoff`` and the three
        inputs).
    bins
        Number of scores per dimension.
    reference
        Score against the buyers of this population (a feature frame of one cutoff, such as
        the last batch scoring's) instead of the buyers at each row's own cutoff: how a
        single customer scored on the spot gets the same scale as everyone else.
    recency
        What R is scored on (:func:`recency_values`): ``"absolute"`` or ``"rhythm"``. Under
        ``"rhythm"`` one-time buyers are measured against the typical gap of the population
        they are scored against (the reference, or the buyers at their own cutoff).

    Returns
    -------
    pandas.DataFrame
        The four columns, on the index of ``features``.
    """
    scores = {name: np.zeros(len(features), dtype=np.int64) for name in ("rfm_r", "rfm_f", "rfm_m")}
    if reference is not None:
        gap = typical_gap_days(reference) if recency == "rhythm" else None
        _, dims = _rfm_inputs(features, recency, gap)
        ref_buyers, ref_dims = _rfm_inputs(reference, recency, gap)
        for name, values in dims.items():
            scores[name] = quantile_score(values, ref_dims[name][ref_buyers], bins)
    else:
        for idx in features.groupby("cutoff", sort=False).indices.values():
            group_frame = features.iloc[idx]
            group_buyers, dims = _rfm_inputs(group_frame, recency)
            for name, group in dims.items():
                scores[name][idx] = quantile_score(group, group[group_buyers], bins)
    segment = rfm_segment(scores["rfm_r"], scores["rfm_f"], scores["rfm_m"], bins)
    out = pd.DataFrame(scores, index=features.index)
    out["rfm_segment"] = pd.Series(segment, index=features.index, dtype="str")
    return out


def score_rfm(features: pd.DataFrame, bins: int = 5, recency: Recency = "absolute") -> pd.DataFrame:
    """Return a copy of ``features`` with the columns of :func:`rfm_columns` added.

    Examples
    --------
    >>> f = pd.DataFrame({"cutoff": 1, "days_since_last_purchase": [1.0, 9.0, None],
    ...                   "n_purchases": [3, 1, 0], "net_revenue_total": [90.0, 10.0, 0.0]})
    >>> score_rfm(f)["rfm_segment"].tolist()
    ['Need attention', 'Lost', 'No purchase yet']
    """
    return pd.concat([features, rfm_columns(features, bins, recency=recency)], axis=1)


def segment_table(features: pd.DataFrame) -> pd.DataFrame:
    """Summarise customers per RFM segment: size, share and value.

    Parameters
    ----------
    features
        A scored feature frame for one cutoff (output of :func:`score_rfm`).

    Returns
    -------
    pandas.DataFrame
        One row per segment (in the grid's order, empty segments kept): ``customers``,
        ``share``, ``net_revenue``, ``avg_net_revenue``, ``avg_recency_days``, ``avg_purchases``.
    """
    order = [*SEGMENTS, NO_PURCHASE]
    grouped = features.groupby("rfm_segment", sort=False).agg(
        customers=("customer_id", "size"),
        net_revenue=("net_revenue_total", "sum"),
        avg_recency_days=("days_since_last_purchase", "mean"),
        avg_purchases=("n_purchases", "mean"),
    )
    table = grouped.reindex(order)
    table["customers"] = table["customers"].fillna(0).astype("int64")
    table["net_revenue"] = table["net_revenue"].fillna(0.0)
    total = max(int(table["customers"].sum()), 1)
    table.insert(1, "share", table["customers"] / total)
    table.insert(
        3, "avg_net_revenue", table["net_revenue"] / table["customers"].where(lambda c: c > 0)
    )
    table.index.name = "segment"
    return table.reset_index()


def segment_churn(at_start: pd.DataFrame, at_end: pd.DataFrame) -> pd.DataFrame:
    """Observed churn of each RFM segment between two cutoffs of one feature pipeline.

    A customer with a purchase at the start churned when their purchase count did not grow by
    the end: no purchase in ``[start, end)``, the churn label's definition (purchases qualify).

    Parameters
    ----------
    at_start
        Scored features at the start cutoff (``customer_id``, ``n_purchases``, ``rfm_segment``).
    at_end
        Features at the end cutoff (``customer_id``, ``n_purchases``).

    Returns
    -------
    pandas.DataFrame
        One row per segment in the grid's order, then "No purchase yet": ``customers`` (with
        a purchase at the start), ``churned`` and ``churn_rate`` (NaN for an empty segment
        and for "No purchase yet", where churn does not apply).

    Examples
    --------
    >>> start = pd.DataFrame({"customer_id": ["a", "b"], "n_purchases": [3, 1],
    ...                       "rfm_segment": ["Champions", "Champions"]})
    >>> end = pd.DataFrame({"customer_id": ["a", "b"], "n_purchases": [4, 1]})
    >>> segment_churn(start, end).set_index("segment").loc["Champions"].tolist()
    [2.0, 1.0, 0.5]
    """
    missing = [c for c in ("customer_id", "n_purchases", "rfm_segment") if c not in at_start]
    if missing or "n_purchases" not in at_end or "customer_id" not in at_end:
        raise ValueError(
            "segment_churn needs customer_id, n_purchases and rfm_segment at the start and "
            f"customer_id, n_purchases at the end (missing at the start: {missing or 'none'})"
        )
    if at_start["customer_id"].duplicated().any() or at_end["customer_id"].duplicated().any():
        raise ValueError("segment_churn takes one cutoff per frame: a customer appears twice")
    start = at_start.loc[at_start["n_purchases"] > 0, ["customer_id", "n_purchases", "rfm_segment"]]
    later = at_end.set_index("customer_id")["n_purchases"].reindex(start["customer_id"])
    churned = later.fillna(0).to_numpy() <= start["n_purchases"].to_numpy()
    counts = (
        pd.DataFrame({"segment": start["rfm_segment"].to_numpy(), "churned": churned})
        .groupby("segment", sort=False)["churned"]
        .agg(["size", "sum"])
        .reindex([*SEGMENTS, NO_PURCHASE])
    )
    table = pd.DataFrame(
        {
            "customers": counts["size"].fillna(0).to_numpy(dtype=float),
            "churned": counts["sum"].fillna(0).to_numpy(dtype=float),
        },
        index=pd.Index([*SEGMENTS, NO_PURCHASE], name="segment"),
    )
    table["churn_rate"] = table["churned"] / table["customers"].where(table["customers"] > 0)
    table.loc[NO_PURCHASE, "churn_rate"] = np.nan
    return table.astype({"customers": "int64", "churned": "int64"}).reset_index()


OBSERVED_CHURN_DAYS = 90
"""Window of the observed segment churn that the lookup table and the page carry."""

OBSERVED_CHURN_COLUMN = f"segment_churn_rate_{OBSERVED_CHURN_DAYS}d"
"""Lookup-table column: the row's segment's rate from :func:`segment_churn_rates` (NaN: unknown)."""


def segment_churn_rates(
    events: EventSource,
    *,
    cutoff: str | pd.Timestamp,
    horizon_days: int = 90,
    config: LifecycleConfig | None = None,
) -> pd.DataFrame:
    """Measure each RFM segment's real churn rate in the window that ends at ``cutoff``.

    Customers are segmented at ``t0 = cutoff - horizon_days`` and a customer churned when no
    purchase falls in ``[t0, cutoff)``: what the name "Lost" or "Champions" has meant on this
    log lately. Both cutoffs go through :func:`lifecycle.features.build.build_features`, so
    purchases, segments and the ``rfm.recency`` option are the pipeline's own.

    Parameters
    ----------
    events
        Canonical events (frame, Arrow table, or Parquet path).
    cutoff
        End of the observed window, usually the latest cutoff (the data must cover it).
    horizon_days
        Window length.
    config
        Lifecycle config (purchase events, RFM settings); the shipped default when None.

    Returns
    -------
    pandas.DataFrame
        :func:`segment_churn`'s table, with ``attrs["start"]`` and ``attrs["end"]``.

    Examples
    --------
    >>> ev = pd.DataFrame({"customer_id": ["a", "a", "b"], "event_type": "purchase",
    ...     "event_ts": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-01-02"], utc=True),
    ...     "revenue": 10.0})
    >>> table = segment_churn_rates(ev, cutoff="2024-04-01", horizon_days=60)
    >>> int(table["customers"].sum()), int(table["churned"].sum())
    (2, 1)
    """
    from lifecycle.features.build import build_features, parse_cutoff

    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, not {horizon_days}")
    end = parse_cutoff(cutoff)
    start = end - pd.Timedelta(days=horizon_days)
    built = build_features(events, cutoffs=[start, end], config=config)
    table = segment_churn(built[built["cutoff"] == start], built[built["cutoff"] == end])
    table.attrs.update(start=start, end=end)
    return table
