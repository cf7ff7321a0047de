"""RFM scoring and named segments.

Scores are quantile scores 1..bins (5 by default) against a reference population: the
customers with a purchase at the same cutoff. A value's quantile is the share of the population
strictly below it, so ties share the lowest score of their block and scores never depend on row
order. Real logs tie heavily on frequency (most customers buy once): one-time buyers all score
F = 1, which keeps segments such as New and About to sleep reachable. Segments follow the
widely used R x FM grid (FM = the rounded mean of the F and M scores).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def _rfm_inputs(features: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Buyers mask and the three dimensions (higher is better), NaN for non-buyers."""
    buyers = features["n_purchases"].to_numpy() > 0
    dims = {
        "rfm_r": -features["days_since_last_purchase"].to_numpy(dtype=float),
        "rfm_f": features["n_purchases"].to_numpy(dtype=float),
        "rfm_m": features["net_revenue_total"].to_numpy(dtype=float),
    }
    return buyers, {name: np.where(buyers, values, np.nan) for name, values in dims.items()}


def rfm_columns(
    features: pd.DataFrame, bins: int = 5, reference: pd.DataFrame | None = None
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

    Returns
    -------
    pandas.DataFrame
        The four columns, on the index of ``features``.
    """
    buyers, dims = _rfm_inputs(features)
    scores = {name: np.zeros(len(features), dtype=np.int64) for name in dims}
    if reference is not None:
        ref_buyers, ref_dims = _rfm_inputs(reference)
        for name, values in dims.items():
            scores[name] = quantile_score(values, ref_dims[name][ref_buyers], bins)
    else:
        for idx in features.groupby("cutoff", sort=False).indices.values():
            group_buyers = buyers[idx]
            for name, values in dims.items():
                group = values[idx]
                scores[name][idx] = quantile_score(group, group[group_buyers], bins)
    segment = rfm_segment(scores["rfm_r"], scores["rfm_f"], scores["rfm_m"], bins)
    out = pd.DataFrame(scores, index=features.index)
    out["rfm_segment"] = pd.Series(segment, index=features.index, dtype="str")
    return out


def score_rfm(features: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    """Return a copy of ``features`` with the columns of :func:`rfm_columns` added.

    Examples
    --------
    >>> f = pd.DataFrame({"cutoff": 1, "days_since_last_purchase": [1.0, 9.0, None],
    ...                   "n_purchases": [3, 1, 0], "net_revenue_total": [90.0, 10.0, 0.0]})
    >>> score_rfm(f)["rfm_segment"].tolist()
    ['Need attention', 'Lost', 'No purchase yet']
    """
    return pd.concat([features, rfm_columns(features, bins)], axis=1)


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
