"""The whole foundation on the real logs in ../shared/data: load, features, stages, RFM."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lifecycle.features.build import build_features
from lifecycle.features.io import load_events
from lifecycle.features.mapping import load_mapping
from lifecycle.features.rfm import segment_table
from lifecycle.features.stages import funnel

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real datasets not found at {DATA} (../shared/data)"
)


@needs_data
def test_cdnow_transaction_only_log_starts_at_conversion():
    result = load_events(DATA / "cdnow" / "CDNOW_master.txt", mapping=load_mapping("cdnow"))
    assert result.rows_quarantined == 0
    # End of the BG/NBD calibration period (weeks 1-39): every customer has bought by then.
    frame = build_features(result.events, cutoffs="1997-10-01")
    assert len(frame) == 23_570
    table = funnel(frame).set_index("stage")
    assert table.loc["reach", "customers"] == table.loc["acquisition", "customers"] == 0
    assert table.loc["conversion", "reached"] == 23_570
    # No advocacy events in CDNOW: loyalty comes only from the top RFM tier, now or at an
    # earlier month start (sticky loyalty): every Champion is loyal, and some former ones.
    loyal, champions = frame["stage"] == "loyalty", frame["rfm_segment"] == "Champions"
    assert loyal[champions].all()
    assert loyal.sum() > champions.sum() > 0
    # Same-day lines are merged, so repeat purchases are counted on distinct days.
    repeaters = frame.loc[frame["n_purchases"] >= 2]
    assert (repeaters["mean_purchase_gap_days"] >= 1).all()
    seg = segment_table(frame)
    assert seg["customers"].sum() == 23_570
    assert seg.set_index("segment").loc["No purchase yet", "customers"] == 0


@needs_data
def test_online_retail_features_at_the_benchmark_cutoff():
    result = load_events(
        DATA / "online_retail" / "online_retail.csv.gz", mapping=load_mapping("online_retail")
    )
    cutoff = pd.Timestamp("2011-09-09", tz="Europe/London")
    frame = build_features(result.events, cutoffs=cutoff)
    before = result.events.loc[result.events["event_ts"] < cutoff, "customer_id"]
    assert set(frame["customer_id"]) == set(before)
    assert (
        frame["n_refunds"].sum()
        == ((result.events["event_type"] == "refund") & (result.events["event_ts"] < cutoff)).sum()
    )
    # net revenue = purchases - refunds, for every customer
    diff = frame["revenue_total"] - frame["refund_amount"] - frame["net_revenue_total"]
    assert diff.abs().max() < 1e-6
