"""RFM scores, segment grid and the funnel."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from lifecycle.features.rfm import (
    NO_PURCHASE,
    SEGMENT_RULES,
    SEGMENTS,
    quantile_score,
    recency_values,
    rfm_segment,
    score_rfm,
    segment_churn,
    segment_churn_rates,
    segment_table,
    typical_gap_days,
)
from lifecycle.features.stages import funnel


def test_quantile_score_spreads_distinct_values_evenly():
    values = np.arange(100, dtype=float)
    scores = quantile_score(values, values)
    assert np.bincount(scores)[1:].tolist() == [20, 20, 20, 20, 20]


def test_quantile_score_ties_share_a_score_and_nan_scores_zero():
    reference = np.array([1.0] * 6 + [2.0, 3.0, 4.0, 5.0])
    scores = quantile_score(np.array([1.0, 2.0, 5.0, np.nan]), reference)
    # value 1 holds 60% of the population: nobody is below it -> score 1, for every tied customer
    assert scores.tolist() == [1, 4, 5, 0]


def test_quantile_score_is_order_invariant():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10, 500).astype(float)
    perm = rng.permutation(500)
    assert (quantile_score(values, values)[perm] == quantile_score(values[perm], values)).all()


def test_segment_grid_covers_every_cell_exactly_once():
    for r, fm in itertools.product(range(1, 6), range(1, 6)):
        hits = [n for n, (rl, rh), (fl, fh) in SEGMENT_RULES if rl <= r <= rh and fl <= fm <= fh]
        assert len(hits) == 1, (r, fm, hits)


def test_every_named_segment_is_reachable():
    grid = np.array(list(itertools.product(range(1, 6), repeat=3)))
    names = set(rfm_segment(grid[:, 0], grid[:, 1], grid[:, 2]))
    assert names == set(SEGMENTS)


@pytest.mark.parametrize(
    ("r", "f", "m", "name"),
    [
        (5, 5, 5, "Champions"),
        (4, 5, 4, "Loyal"),
        (5, 2, 3, "Potential loyalist"),
        (5, 1, 1, "New"),
        (4, 1, 1, "Promising"),
        (3, 3, 2, "Need attention"),
        (3, 1, 1, "About to sleep"),
        (1, 5, 5, "Cannot lose them"),
        (2, 4, 3, "At risk"),
        (2, 1, 2, "Hibernating"),
        (1, 1, 1, "Lost"),
        (0, 0, 0, NO_PURCHASE),
    ],
)
def test_rfm_segment_names(r, f, m, name):
    assert rfm_segment(np.array([r]), np.array([f]), np.array([m]))[0] == name


def _scored_input() -> pd.DataFrame:
    cut_a, cut_b = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-02-01", tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "a", "b"],
            "cutoff": [cut_a, cut_a, cut_a, cut_b, cut_b],
            "days_since_last_purchase": [1.0, 50.0, np.nan, 5.0, 2.0],
            "n_purchases": [5, 1, 0, 5, 2],
            "net_revenue_total": [500.0, 10.0, 0.0, 500.0, 30.0],
        }
    )


def test_score_rfm_scores_each_cutoff_against_its_own_population():
    scored = score_rfm(_scored_input())
    assert scored[["rfm_r", "rfm_f", "rfm_m"]].to_numpy().tolist() == [
        [3, 3, 3],
        [1, 1, 1],
        [0, 0, 0],
        [1, 3, 3],
        [3, 1, 1],
    ]
    assert scored["rfm_segment"].tolist()[2] == NO_PURCHASE
    shuffled = score_rfm(_scored_input().iloc[[4, 2, 0, 3, 1]]).sort_index()
    assert_frame_equal(shuffled, scored)


def test_quantile_score_one_time_buyers_score_lowest_frequency():
    # Most customers of a real shop buy once; they must land in F = 1, not in the middle.
    frequency = np.array([1.0] * 70 + [2.0] * 15 + [3.0] * 10 + [8.0] * 5)
    scores = quantile_score(frequency, frequency)
    assert set(scores[:70]) == {1}
    assert scores[70:].min() > 1


def test_segment_table_reconciles_with_customers():
    scored = score_rfm(_scored_input())
    table = segment_table(scored[scored["cutoff"] == scored["cutoff"].min()])
    assert table["segment"].tolist() == [*SEGMENTS, NO_PURCHASE]
    assert table["customers"].sum() == 3
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["net_revenue"].sum() == pytest.approx(510.0)


def test_funnel_counts_reached_and_conversion():
    frame = pd.DataFrame(
        {
            "stage": ["reach"] * 4 + ["acquisition"] * 3 + ["conversion"] * 2 + ["loyalty"],
            "status": ["active", "lapsed"] * 5,
        }
    )
    table = funnel(frame)
    assert table["customers"].tolist() == [4, 3, 2, 0, 1]
    assert table["reached"].tolist() == [10, 6, 3, 1, 1]
    assert table["conversion_from_previous"].tolist()[1:] == [0.6, 0.5, 1 / 3, 1.0]
    assert (table["active"] + table["lapsed"]).tolist() == table["customers"].tolist()


# --- recency against the customer's own rhythm ----------------------------------------------


def _rhythm_input() -> pd.DataFrame:
    cut = pd.Timestamp("2024-06-01", tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": ["steady", "fast", "once", "none", "twin"],
            "cutoff": cut,
            # steady buys every 60 days and is one day late; fast buys every 5 days and is 20 late
            "days_since_last_purchase": [61.0, 20.0, 30.0, np.nan, 10.0],
            "mean_purchase_gap_days": [60.0, 5.0, np.nan, np.nan, 0.0],
            "n_purchases": [6, 30, 1, 0, 2],
            "net_revenue_total": [600.0, 900.0, 20.0, 0.0, 40.0],
        }
    )


def test_recency_values_divide_by_the_customers_own_gap():
    frame = _rhythm_input()
    assert typical_gap_days(frame) == pytest.approx(32.5)  # median of 60 and 5 (0 is no gap)
    got = recency_values(frame, "rhythm")
    expected = [61 / 60, 20 / 5, 30 / 32.5, np.nan, 10 / 32.5]
    np.testing.assert_allclose(got, expected)
    np.testing.assert_array_equal(
        recency_values(frame, "absolute"), frame["days_since_last_purchase"]
    )


def test_rhythm_recency_ranks_a_slow_steady_buyer_above_an_overdue_fast_one():
    frame = _rhythm_input()
    absolute = score_rfm(frame).set_index("customer_id")
    rhythm = score_rfm(frame, recency="rhythm").set_index("customer_id")
    assert absolute.loc["steady", "rfm_r"] < absolute.loc["fast", "rfm_r"]
    assert rhythm.loc["steady", "rfm_r"] > rhythm.loc["fast", "rfm_r"]
    # F and M do not change with the recency option
    assert_frame_equal(absolute[["rfm_f", "rfm_m"]], rhythm[["rfm_f", "rfm_m"]])
    assert rhythm.loc["none", "rfm_segment"] == NO_PURCHASE


def test_rhythm_recency_needs_the_gap_column():
    frame = _scored_input()
    with pytest.raises(ValueError, match="mean_purchase_gap_days"):
        score_rfm(frame, recency="rhythm")
    with pytest.raises(ValueError, match="rhythm"):
        recency_values(frame, "weekly")  # type: ignore[arg-type]


@pytest.mark.parametrize("recency", ["absolute", "rhythm"])
def test_rfm_scored_alone_against_a_reference_matches_the_batch(recency, transaction_log):
    """Serving scores one customer against the batch population: the same scores as the batch."""
    from lifecycle.features.build import build_features
    from lifecycle.features.config import LifecycleConfig, RfmSettings

    config = LifecycleConfig(rfm=RfmSettings(recency=recency))
    log = transaction_log(seed=5, customers=60)
    cut = pd.Timestamp("2023-10-01", tz="UTC")
    batch = build_features(log, cutoffs=cut, config=config).set_index("customer_id")
    for customer in ["c000", "c001", "c004", "c011"]:
        alone = build_features(
            log[log["customer_id"] == customer],
            cutoffs=cut,
            config=config,
            rfm_reference=batch.reset_index(),
            threads=1,
        ).set_index("customer_id")
        cols = ["rfm_r", "rfm_f", "rfm_m", "rfm_segment"]
        assert alone.loc[customer, cols].tolist() == batch.loc[customer, cols].tolist()


# --- each segment's observed churn ----------------------------------------------------------


def test_segment_churn_counts_customers_without_a_later_purchase():
    start = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "n_purchases": [4, 2, 1, 1, 0],
            "rfm_segment": ["Champions", "Champions", "Lost", "Lost", NO_PURCHASE],
        }
    )
    end = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d", "e", "f"], "n_purchases": [5, 2, 1, 3, 1, 1]}
    )
    table = segment_churn(start, end).set_index("segment")
    assert table.index.tolist() == [*SEGMENTS, NO_PURCHASE]
    assert table.loc["Champions"].tolist() == [2, 1, 0.5]
    assert table.loc["Lost"].tolist() == [2, 1, 0.5]
    assert table["customers"].sum() == 4  # "e" had no purchase at the start, "f" did not exist
    assert np.isnan(table.loc["New", "churn_rate"]) and np.isnan(
        table.loc[NO_PURCHASE, "churn_rate"]
    )
    with pytest.raises(ValueError, match="rfm_segment"):
        segment_churn(start.drop(columns="rfm_segment"), end)


def test_segment_churn_rates_from_events_and_a_cutoff(transaction_log):
    log = transaction_log(seed=6, customers=60)
    cutoff = pd.Timestamp("2023-12-01", tz="UTC")
    table = segment_churn_rates(log, cutoff=cutoff, horizon_days=90)
    start = cutoff - pd.Timedelta(days=90)
    assert table.attrs["start"] == start
    before = set(log.loc[log["event_ts"] < start, "customer_id"])
    bought = set(log.loc[(log["event_ts"] >= start) & (log["event_ts"] < cutoff), "customer_id"])
    assert table["customers"].sum() == len(before)
    assert table["churned"].sum() == len(before - bought)
    with pytest.raises(ValueError, match="horizon_days"):
        segment_churn_rates(log, cutoff=cutoff, horizon_days=0)
