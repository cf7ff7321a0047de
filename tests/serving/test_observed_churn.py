"""Each segment's observed 90-day churn in the lookup table: from `lifecycle score` and from events.

Both ways of building the service's lookup table carry, on every row, the rate
:func:`lifecycle.features.rfm.segment_churn_rates` gives for the row's segment at the table's
cutoff with the models' lifecycle config, so the page can show what a segment's name has meant
on this log lately.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_series_equal
from starlette.testclient import TestClient

from lifecycle.features.rfm import NO_PURCHASE, OBSERVED_CHURN_COLUMN, segment_churn_rates
from lifecycle.serving.engine import build_lookup
from lifecycle.serving.guard import RUNTIME

from .conftest import CUTOFF, World


@pytest.fixture(scope="module")
def expected_rates(world: World, client: TestClient) -> pd.Series:
    """The rates by segment, from the function itself, with the served models' config."""
    table = segment_churn_rates(
        world.events, cutoff=CUTOFF, horizon_days=90, config=RUNTIME.engine.lifecycle
    )
    return table.set_index("segment")["churn_rate"]


def test_scores_table_carries_each_segments_observed_churn(
    world: World, client: TestClient, expected_rates: pd.Series
) -> None:
    scores = pd.read_parquet(world.lookup)
    assert OBSERVED_CHURN_COLUMN == "segment_churn_rate_90d"
    assert scores[OBSERVED_CHURN_COLUMN].dtype == np.float64
    expected = scores["rfm_segment"].astype(str).map(expected_rates).astype("float64")
    assert_series_equal(scores[OBSERVED_CHURN_COLUMN], expected, check_names=False)
    # known for buyers' segments, unknown for customers without a purchase
    buyers = scores["rfm_segment"] != NO_PURCHASE
    assert scores.loc[buyers, OBSERVED_CHURN_COLUMN].notna().all()
    assert scores.loc[~buyers, OBSERVED_CHURN_COLUMN].isna().all()
    assert scores[OBSERVED_CHURN_COLUMN].nunique() >= 3  # a rate per segment, not one number
    # the page's numbers carry the same rate per segment, None where unknown
    segments = client.get("/overview.json").json()["segments"]
    assert {s["segment"] for s in segments} == set(scores["rfm_segment"].astype(str))
    for row in segments:
        want = expected_rates[row["segment"]]
        if np.isnan(want):
            assert row[OBSERVED_CHURN_COLUMN] is None, row
        else:
            assert row[OBSERVED_CHURN_COLUMN] == pytest.approx(want), row


def test_lookup_built_from_events_carries_the_same_rates(world: World, client: TestClient) -> None:
    config = RUNTIME.engine.lifecycle
    built = build_lookup(world.events, config, cutoff=CUTOFF).frame
    scored = pd.read_parquet(world.lookup)
    merged = built[["customer_id", OBSERVED_CHURN_COLUMN]].merge(
        scored[["customer_id", OBSERVED_CHURN_COLUMN]], on="customer_id", suffixes=("", "_score")
    )
    assert len(merged) == len(built) == len(scored)
    assert_series_equal(
        merged[OBSERVED_CHURN_COLUMN],
        merged[f"{OBSERVED_CHURN_COLUMN}_score"],
        check_names=False,
    )


def test_a_log_shorter_than_the_window_has_no_observed_churn(
    customer_events: pd.DataFrame, client: TestClient
) -> None:
    cutoff = pd.Timestamp(CUTOFF, tz="UTC")
    recent = customer_events[customer_events["event_ts"] >= cutoff - pd.Timedelta(days=60)]
    frame = build_lookup(recent, RUNTIME.engine.lifecycle, cutoff=CUTOFF).frame
    assert (frame["rfm_segment"] != NO_PURCHASE).any()
    assert frame[OBSERVED_CHURN_COLUMN].isna().all()
