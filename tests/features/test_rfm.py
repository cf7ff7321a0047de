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
    rfm_segment,
    score_rfm,
    segment_table,
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
