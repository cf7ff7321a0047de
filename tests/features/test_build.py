"""Point-in-time features on hand-built logs: exact values, cutoff ties, refunds, time zones."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from lifecycle.features.build import (
    CHECK_COLUMNS,
    build_features,
    connect,
    feature_columns,
    feature_sql,
    monthly_cutoffs,
    register_events,
    write_features,
)
from lifecycle.features.config import LifecycleConfig, StageRules
from lifecycle.features.schema import EVENT_COLUMNS

T = pd.Timestamp("2024-06-01", tz="UTC")


def make_events(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (customer_id, event_ts, event_type, revenue, channel, campaign_id)."""
    frame = pd.DataFrame(
        rows, columns=["customer_id", "event_ts", "event_type", "revenue", "channel", "campaign_id"]
    )
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True).astype("datetime64[us, UTC]")
    frame["revenue"] = frame["revenue"].astype("float64")
    frame["currency"] = "USD"
    return frame[list(EVENT_COLUMNS)]


HAND_LOG = make_events(
    [
        ("c1", "2024-01-01 10:00", "visit", None, "organic_search", None),
        ("c1", "2024-01-02 00:00", "signup", None, None, None),
        ("c1", "2024-02-01 00:00", "purchase", 100.0, None, None),
        ("c1", "2024-03-02 00:00", "purchase", 50.0, None, "CMP1"),
        ("c1", "2024-03-05 00:00", "refund", -20.0, None, None),
        ("c1", "2024-05-02 00:00", "purchase", 30.0, None, None),
        ("c1", "2024-05-20 00:00", "referral", None, None, None),
        ("c1", "2024-06-01 00:00", "purchase", 999.0, None, None),  # exactly at T: excluded
        ("c2", "2024-05-25 12:00", "visit", None, "paid_social", None),
        ("c2", "2024-05-26 00:00", "campaign_exposure", None, "email", "CMP2"),
        ("c3", "2024-06-01 00:00", "visit", None, "direct", None),  # only at T: no row
        ("c3", "2024-06-02 00:00", "signup", None, None, None),
    ]
)

EXPECTED_COLUMNS = [
    "n_events",
    "days_since_first_event",
    "days_since_last_event",
    "n_events_7d",
    "n_events_30d",
    "n_events_90d",
    "n_events_365d",
    "n_purchases",
    "revenue_total",
    "net_revenue_total",
    "n_purchases_30d",
    "revenue_30d",
    "n_purchases_90d",
    "revenue_90d",
    "avg_order_value",
    "max_order_value",
    "days_since_last_purchase",
    "days_since_first_purchase",
    "days_since_signup",
    "mean_purchase_gap_days",
    "var_purchase_gap_days",
    "purchase_gap_ratio",
    "repeat_purchase_days",
    "purchases_per_30d",
    "purchase_trend_30d",
    "revenue_trend_30d",
    "activity_trend_30d",
    "n_refunds",
    "refund_amount",
    "refund_rate",
    "n_campaign_exposures",
    "n_campaign_responses",
    "days_since_last_campaign_exposure",
    "n_offer_redemptions",
    "n_offer_redemptions_30d",
    "offer_redemption_rate",
    "n_loyalty_signals",
    "n_channel_paid_social",
    "n_channel_email",
    "stage_code",
    "days_in_stage",
]


def test_build_features_hand_log_exact_values():
    got = build_features(HAND_LOG, cutoffs=T)
    nan = np.nan
    expected = pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "n_events": [7, 2],
            "days_since_first_event": [151 + 14 / 24, 6.5],
            "days_since_last_event": [12.0, 6.0],
            "n_events_7d": [0, 2],
            "n_events_30d": [2, 2],  # an event exactly 30 days old is inside the 30-day window
            "n_events_90d": [3, 2],
            "n_events_365d": [7, 2],
            "n_purchases": [3, 0],
            "revenue_total": [180.0, 0.0],
            "net_revenue_total": [160.0, 0.0],
            "n_purchases_30d": [1, 0],
            "revenue_30d": [30.0, 0.0],
            "n_purchases_90d": [1, 0],
            "revenue_90d": [30.0, 0.0],
            "avg_order_value": [60.0, nan],
            "max_order_value": [100.0, nan],
            "days_since_last_purchase": [30.0, nan],
            "days_since_first_purchase": [121.0, nan],
            "days_since_signup": [151.0, nan],
            "mean_purchase_gap_days": [45.5, nan],
            "var_purchase_gap_days": [480.5, nan],  # gaps 30 and 61 days
            "purchase_gap_ratio": [30 / 45.5, nan],
            "repeat_purchase_days": [2, 0],  # three purchases on three days
            "purchases_per_30d": [30 * 3 / (151 + 14 / 24), nan],  # tenure from 10:00 on Jan 1
            "purchase_trend_30d": [1, 0],
            "revenue_trend_30d": [30.0, 0.0],
            "activity_trend_30d": [2, 2],
            "n_refunds": [1, 0],
            "refund_amount": [20.0, 0.0],
            "refund_rate": [1 / 3, nan],
            "n_campaign_exposures": [0, 1],
            "n_campaign_responses": [1, 0],
            "days_since_last_campaign_exposure": [nan, 6.0],
            "n_offer_redemptions": [0, 0],
            "n_offer_redemptions_30d": [0, 0],
            "offer_redemption_rate": [nan, 0.0],  # c2: one offer, none redeemed
            "n_loyalty_signals": [1, 0],
            "n_channel_paid_social": [0, 1],
            "n_channel_email": [0, 1],
            "stage_code": [4, 0],
            "days_in_stage": [12.0, 6.5],  # loyalty since the referral; reach since first seen
        }
    )
    assert_frame_equal(got[["customer_id", *EXPECTED_COLUMNS]], expected, check_dtype=False)
    assert got["stage"].tolist() == ["loyalty", "reach"]
    assert got["status"].tolist() == ["active", "active"]
    assert (got["cutoff"] == T).all()
    assert "c3" not in set(got["customer_id"])  # its only earlier-or-equal event is at T


def test_build_features_event_at_cutoff_is_excluded_but_counts_one_microsecond_later():
    later = T + pd.Timedelta(microseconds=1)
    got = build_features(HAND_LOG, cutoffs=[T, later]).set_index(["cutoff", "customer_id"])
    assert got.loc[(T, "c1"), "n_purchases"] == 3
    assert got.loc[(later, "c1"), "n_purchases"] == 4
    assert got.loc[(later, "c3"), "n_events"] == 1


def test_build_features_columns_are_the_declared_ones():
    got = build_features(HAND_LOG, cutoffs=T)
    declared = ["customer_id", "cutoff", *feature_columns()]
    assert [c for c in got.columns if c in declared] == declared
    assert set(got.columns) - set(declared) == {"rfm_segment", "stage", "status"}


def test_build_features_stage_rules_follow_config():
    log = make_events(
        [
            ("a", "2024-01-01", "visit", None, None, None),
            ("b", "2024-01-01", "signup", None, None, None),
            ("c", "2024-01-02", "purchase", 10.0, None, None),
            ("d", "2024-01-02", "purchase", 10.0, None, None),
            ("d", "2024-01-03", "purchase", 10.0, None, None),
            ("e", "2024-01-02", "purchase", 10.0, None, None),
            ("e", "2024-01-03", "purchase", 10.0, None, None),
            ("e", "2024-01-04", "loyalty_join", None, None, None),
            ("f", "2024-01-04", "referral", None, None, None),  # advocacy without purchases
            ("f", "2024-01-04", "signup", None, None, None),
        ]
    )
    got = build_features(log, cutoffs="2024-02-01")
    assert dict(zip(got["customer_id"], got["stage"], strict=True)) == {
        "a": "reach",
        "b": "acquisition",
        "c": "conversion",
        "d": "retention",
        "e": "loyalty",
        "f": "acquisition",
    }
    strict = LifecycleConfig(stages=StageRules(retention_min_purchases=3))
    got = build_features(log, cutoffs="2024-02-01", config=strict)
    assert got.set_index("customer_id").loc[["d", "e"], "stage"].tolist() == ["conversion"] * 2


def test_build_features_transaction_only_log_uses_top_rfm_tier_for_loyalty():
    rows = []
    for i in range(10):
        for k in range(i + 1):  # customer i buys i+1 times, the last one on day 20+i
            rows.append((f"t{i}", f"2024-01-{1 + k:02d}", "purchase", 10.0 * (i + 1), None, None))
        rows.append((f"t{i}", f"2024-01-{20 + i:02d}", "purchase", 10.0 * (i + 1), None, None))
    log = make_events(rows)
    got = build_features(log, cutoffs="2024-02-01").set_index("customer_id")
    assert set(got["stage"]) <= {"retention", "loyalty"}
    assert got.loc["t9", "rfm_segment"] == "Champions"
    assert (got["stage"] == "loyalty").equals(got["rfm_segment"] == "Champions")
    never = LifecycleConfig(stages=StageRules(loyalty_top_rfm_tier="never"))
    got = build_features(log, cutoffs="2024-02-01", config=never)
    assert set(got["stage"]) == {"retention"}


def test_build_features_windows_are_absolute_across_daylight_saving():
    # Local London times: 2024-03-31 01:00 GMT becomes 02:00 BST (clocks go forward).
    london = [
        ("x", pd.Timestamp("2024-03-24 12:00", tz="Europe/London"), "visit"),  # GMT, 12:00Z
        ("x", pd.Timestamp("2024-03-31 00:30", tz="Europe/London"), "visit"),  # GMT, 00:30Z
        ("x", pd.Timestamp("2024-03-31 03:00", tz="Europe/London"), "visit"),  # BST, 02:00Z
    ]
    log = make_events([(c, ts.tz_convert("UTC"), t, None, None, None) for c, ts, t in london])
    cutoff = pd.Timestamp("2024-03-31 12:00", tz="Europe/London")  # 11:00Z
    got = build_features(log, cutoffs=cutoff).iloc[0]
    # 7 local calendar days but only 6 days 23 hours of absolute time: inside the 7-day window.
    assert got["days_since_first_event"] == pytest.approx(7 - 1 / 24, abs=1e-12)
    assert got["days_since_last_event"] == pytest.approx(9 / 24, abs=1e-12)
    assert got["n_events_7d"] == 3
    assert got["cutoff"] == pd.Timestamp("2024-03-31 11:00", tz="UTC")
    # The same instant given with a different zone is the same cutoff.
    same = build_features(log, cutoffs="2024-03-31T07:00:00-04:00").iloc[0]
    assert_frame_equal(got.to_frame().T, same.to_frame().T)


def test_build_features_shuffled_input_gives_identical_features():
    expected = build_features(HAND_LOG, cutoffs=[T, T + pd.Timedelta(days=3)])
    for seed in range(3):
        shuffled = HAND_LOG.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        got = build_features(shuffled, cutoffs=[T + pd.Timedelta(days=3), T])
        assert_frame_equal(got, expected)


def test_build_features_twice_is_byte_identical(tmp_path):
    digests = []
    for name in ("a", "b"):
        path = write_features(build_features(HAND_LOG, cutoffs=T), tmp_path / f"{name}.parquet")
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_build_features_reads_parquet_file_and_folder(tmp_path):
    import pyarrow.parquet as pq

    from lifecycle.features.schema import to_canonical_table

    table = to_canonical_table(HAND_LOG)
    pq.write_table(table, tmp_path / "events.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 5), folder / "part-0.parquet")
    pq.write_table(table.slice(5), folder / "part-1.parquet")
    expected = build_features(HAND_LOG, cutoffs=T)
    assert_frame_equal(build_features(tmp_path / "events.parquet", cutoffs=T), expected)
    assert_frame_equal(build_features(folder, cutoffs=T), expected)


def test_monthly_cutoffs_span_the_log():
    cuts = monthly_cutoffs(HAND_LOG)
    assert cuts[0] == pd.Timestamp("2024-02-01", tz="UTC")
    assert cuts[-1] == pd.Timestamp("2024-06-01", tz="UTC")


# --- leakage: events at or after the cutoff never change features at the cutoff -------------

TYPES = ["visit", "signup", "purchase", "refund", "referral", "campaign_exposure", "email_open"]

future_event = st.tuples(
    st.sampled_from(["c1", "c2", "c3", "new"]),
    st.integers(min_value=0, max_value=400 * 24 * 3600),  # seconds at or after the cutoff
    st.sampled_from(TYPES),
    st.one_of(st.none(), st.floats(min_value=-500, max_value=500, allow_nan=False)),
    st.sampled_from([None, "email", "direct", "elsewhere"]),
    st.sampled_from([None, "CMPX"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(future_event, min_size=1, max_size=25))
def test_build_features_future_events_never_change_features(future):
    rows = [(c, T + pd.Timedelta(seconds=s), t, r, ch, cmp) for c, s, t, r, ch, cmp in future]
    augmented = pd.concat([HAND_LOG, make_events(rows)], ignore_index=True)
    assert_frame_equal(build_features(augmented, cutoffs=T), build_features(HAND_LOG, cutoffs=T))


def test_build_features_with_a_memory_limit_gives_the_same_features():
    assert_frame_equal(
        build_features(HAND_LOG, cutoffs=T, memory_limit="64MB"),
        build_features(HAND_LOG, cutoffs=T),
    )


def test_build_features_rejects_a_bad_memory_limit():
    with pytest.raises(ValueError, match="lots"):
        build_features(HAND_LOG, cutoffs=T, memory_limit="lots")


def test_build_features_later_cutoffs_never_change_earlier_ones():
    # A transaction-only log until March; a review appears after the first cutoff.
    rows = []
    for i in range(10):
        for k in range(i + 2):
            rows.append((f"t{i}", f"2024-01-{1 + k:02d}", "purchase", 10.0 * (i + 1), None, None))
    rows.append(("t0", "2024-03-01", "review", None, None, None))
    log = make_events(rows)
    alone = build_features(log, cutoffs="2024-02-01")
    together = build_features(log, cutoffs=["2024-02-01", "2024-04-01"])
    first = together[together["cutoff"] == pd.Timestamp("2024-02-01", tz="UTC")]
    assert_frame_equal(first.reset_index(drop=True), alone)
    assert (alone["stage"] == "loyalty").any()  # RFM-tier loyalty: no advocacy events yet
    later = together[together["cutoff"] == pd.Timestamp("2024-04-01", tz="UTC")]
    assert set(later["stage"]) == {"retention", "loyalty"}
    assert later.set_index("customer_id").loc["t0", "stage"] == "loyalty"  # by its review


def test_build_features_refunds_reduce_revenue_whatever_their_sign():
    log = make_events(
        [
            ("r", "2024-01-01", "purchase", 50.0, None, None),
            ("r", "2024-01-02", "refund", 20.0, None, None),  # positive in the source
            ("r", "2024-01-03", "refund", -5.0, None, None),
            ("r", "2024-01-04", "refund", None, None, None),
        ]
    )
    got = build_features(log, cutoffs="2024-02-01").iloc[0]
    assert got["refund_amount"] == 25.0
    assert got["net_revenue_total"] == 25.0
    assert got["n_refunds"] == 3


def test_build_features_event_roles_follow_config():
    from lifecycle.features.config import FeatureSettings

    log = make_events(
        [
            ("r", "2024-01-01", "purchase", 50.0, None, None),
            ("r", "2024-01-02", "return", -20.0, None, None),
            ("r", "2024-01-03", "offer_sent", None, None, "CMP"),
        ]
    )
    roles = FeatureSettings(refund_events=("return",), exposure_events=("offer_sent",))
    config = LifecycleConfig(vocabulary=("purchase", "return", "offer_sent"), features=roles)
    got = build_features(log, cutoffs="2024-02-01", config=config).iloc[0]
    assert got["net_revenue_total"] == 30.0
    assert got["n_campaign_exposures"] == 1
    assert got["n_return"] == 1


def test_build_features_needs_only_the_required_columns():
    minimal = HAND_LOG[["customer_id", "event_ts", "event_type"]]
    got = build_features(minimal, cutoffs=T)
    assert got["n_purchases"].tolist() == [3, 0]
    assert got["revenue_total"].tolist() == [0.0, 0.0]
    assert got["n_channel_email"].tolist() == [0, 0]


def test_build_features_treats_non_finite_revenue_as_missing():
    log = HAND_LOG.copy()
    log.loc[2, "revenue"] = np.nan
    log.loc[3, "revenue"] = np.inf
    got = build_features(log, cutoffs=T).set_index("customer_id")
    assert got.loc["c1", "revenue_total"] == 30.0
    assert got.loc["c1", "n_purchases"] == 3


def test_build_features_rejects_events_without_required_columns(tmp_path):
    with pytest.raises(ValueError, match="event_type"):
        build_features(HAND_LOG.drop(columns=["event_type"]), cutoffs=T)
    folder = tmp_path / "mixed"
    folder.mkdir()
    HAND_LOG.to_parquet(folder / "a.parquet")
    pd.DataFrame({"customer_id": ["x"], "reason": ["bad"]}).to_parquet(folder / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet"):
        build_features(folder, cutoffs=T)


def test_build_features_reads_only_events_parquet_in_an_output_folder(tmp_path):
    import pyarrow.parquet as pq

    from lifecycle.features.schema import to_canonical_table

    pq.write_table(to_canonical_table(HAND_LOG), tmp_path / "events.parquet")
    # what `lifecycle validate` leaves beside it: rows that must never reach a feature
    pq.write_table(to_canonical_table(HAND_LOG.head(3)), tmp_path / "quarantine.parquet")
    assert_frame_equal(build_features(tmp_path, cutoffs=T), build_features(HAND_LOG, cutoffs=T))


def test_build_features_hand_log_every_remaining_column():
    got = build_features(HAND_LOG, cutoffs=T).set_index("customer_id")
    from lifecycle.features.config import LifecycleConfig as Config
    from lifecycle.features.definitions import _ident

    vocabulary = Config().vocabulary
    expected_types = {
        "c1": {
            "visit": (1, 0),
            "signup": (1, 0),
            "purchase": (3, 1),
            "refund": (1, 0),
            "referral": (1, 1),
        },
        "c2": {"visit": (1, 1), "campaign_exposure": (1, 1)},
    }
    for customer, counts in expected_types.items():
        for event_type in vocabulary:
            total, last_30 = counts.get(event_type, (0, 0))
            assert got.loc[customer, f"n_{_ident(event_type)}"] == total, (customer, event_type)
            assert got.loc[customer, f"n_{_ident(event_type)}_30d"] == last_30
    channels = {"c1": {"organic_search": 1}, "c2": {"paid_social": 1, "email": 1}}
    for customer, counts in channels.items():
        for channel in [*Config().features.channels, "other"]:
            assert got.loc[customer, f"n_channel_{channel}"] == counts.get(channel, 0)
    assert got.loc["c1", ["n_purchases_7d", "n_purchases_365d"]].tolist() == [0, 3]
    assert got.loc["c1", ["revenue_7d", "revenue_365d"]].tolist() == [0.0, 180.0]
    # the only buyer at T: one reference value, nobody below it -> every score 1
    assert got.loc["c1", ["rfm_r", "rfm_f", "rfm_m", "rfm_segment"]].tolist() == [1, 1, 1, "Lost"]
    assert got.loc["c2", ["rfm_r", "rfm_f", "rfm_m", "rfm_segment"]].tolist() == [
        0,
        0,
        0,
        "No purchase yet",
    ]
    assert got.loc["c1", "stage"] == "loyalty" and got.loc["c2", "stage"] == "reach"
    assert got["status"].tolist() == ["active", "active"]
    checked = {c for c in got.columns if c.startswith(("n_channel_", "rfm_"))} | {
        f"n_{_ident(t)}{w}" for t in vocabulary for w in ("", "_30d")
    }
    covered = (
        set(EXPECTED_COLUMNS)
        | checked
        | {
            "cutoff",
            "stage",
            "status",
            "n_purchases_7d",
            "n_purchases_365d",
            "revenue_7d",
            "revenue_365d",
        }
    )
    assert set(got.columns) <= covered, sorted(set(got.columns) - covered)


SUBSETS = [
    list(CHECK_COLUMNS),
    # windows (age buckets), channels, campaigns, purchase sequences and derived features
    ["days_in_stage", "n_purchases_30d", "var_purchase_gap_days", "n_channel_email"],
    ["n_campaign_responses", "refund_rate", "activity_trend_30d", "repeat_purchase_days"],
]


@pytest.mark.parametrize("columns", SUBSETS)
def test_feature_sql_subset_at_many_cutoffs_gives_the_full_build_values(columns):
    cuts = pd.to_datetime(
        ["2024-03-03", "2024-05-21", "2024-06-01 00:00:01"], utc=True, format="ISO8601"
    )
    config = LifecycleConfig(stages=StageRules(loyalty_top_rfm_tier="never"))  # SQL's stages
    full = build_features(HAND_LOG, cutoffs=list(cuts), config=config)
    con = connect()
    try:
        register_events(con, HAND_LOG)
        con.register("cuts", pd.DataFrame({"cutoff": cuts.astype("datetime64[us, UTC]")}))
        sql = feature_sql(config, columns=columns, cutoffs_table="cuts")
        got = con.sql(sql).to_arrow_table().to_pandas()
    finally:
        con.close()
    assert set(columns) <= set(got.columns) < set(full.columns)
    got = got.sort_values(["cutoff", "customer_id"], ignore_index=True)
    if "stage_code" in got:  # build_features holds the code as int64, the SQL as int32
        got["stage_code"] = got["stage_code"].astype("int64")
    assert_frame_equal(got, full[list(got.columns)])
    assert len(got) == 5  # c1 at every cutoff; c2 and c3 only at the last


def test_feature_sql_subset_without_a_sequence_feature_skips_the_purchase_window():
    config = LifecycleConfig()
    assert "row_number()" in feature_sql(config)
    assert "row_number()" in feature_sql(config, columns=["days_in_stage"])
    assert "row_number()" not in feature_sql(config, columns=list(CHECK_COLUMNS))


@pytest.mark.parametrize("name", ["n_purchases_45d", "_revenue_micro"])
def test_feature_sql_rejects_an_unknown_or_internal_column(name):
    with pytest.raises(ValueError, match=repr(name)):
        feature_sql(LifecycleConfig(), columns=["n_purchases", name])
