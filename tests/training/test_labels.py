"""Labels on hand-built logs: exact values, window edges, incomplete windows, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from lifecycle.features.build import build_features
from lifecycle.features.schema import EVENT_COLUMNS
from lifecycle.training.labels import (
    IncompleteLabelWindow,
    build_labels,
    observation_end,
    window_activity,
)
from lifecycle.training.splits import SplitError, customer_groups, time_split

T1 = pd.Timestamp("2024-03-01", tz="UTC")
T2 = pd.Timestamp("2024-03-11", tz="UTC")
END = pd.Timestamp("2024-04-01", tz="UTC")


def make_events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "event_type", "revenue"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    frame["revenue"] = frame["revenue"].astype("float64")
    frame["channel"] = None
    frame["campaign_id"] = None
    frame["currency"] = "USD"
    return frame[list(EVENT_COLUMNS)]


# H = 10 days: windows [03-01, 03-11) and [03-11, 03-21).
LOG = make_events(
    [
        # a: one purchase before T1 (conversion); buys at exactly T1 (in T1's window, so
        # retention by T1 + 10 d); a refund inside T1's window; nothing in T2's window.
        ("a", "2024-02-01", "signup", None),
        ("a", "2024-02-10", "purchase", 40.0),
        ("a", "2024-03-01 00:00", "purchase", 25.0),
        ("a", "2024-03-05", "refund", 5.0),
        # b: signed up, no purchase; buys at exactly T1 + 10 d = T2 (outside T1's window,
        # inside T2's); then one more purchase on 03-15.
        ("b", "2024-02-20", "visit", None),
        ("b", "2024-02-21", "signup", None),
        ("b", "2024-03-11 00:00", "purchase", 10.0),
        ("b", "2024-03-15", "purchase", 12.5),
        # c: two purchases before T1 (retention), silent afterwards; a review late on.
        ("c", "2024-01-05", "purchase", 100.0),
        ("c", "2024-02-05", "purchase", 60.0),
        ("c", "2024-03-25", "review", None),
        # d: only seen after T1 (no row at T1).
        ("d", "2024-03-02", "visit", None),
        ("z", "2024-03-31", "visit", None),
    ]
)


def labels_frame(task: str, horizon: int = 10) -> pd.DataFrame:
    features = build_features(LOG, cutoffs=[T1, T2])
    y = build_labels(LOG, features, task=task, horizon_days=horizon, end=END)  # type: ignore[arg-type]
    return features[["customer_id", "cutoff"]].assign(label=y).reset_index(drop=True)


def expected(rows: list[tuple[str, pd.Timestamp, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "cutoff", "label"])
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us, UTC]")
    return frame


def test_next_stage_labels_exact() -> None:
    got = labels_frame("next_stage")
    want = expected(
        [
            ("a", T1, 1.0),  # conversion -> retention (purchase exactly at T1 counts)
            ("b", T1, 0.0),  # acquisition; its purchase at T1 + H is outside the window
            ("c", T1, 0.0),  # retention, no loyalty signal before 03-11
            ("a", T2, 0.0),  # retention, stays
            ("b", T2, 1.0),  # acquisition -> retention (two purchases)
            ("c", T2, 0.0),  # the review on 03-25 is after T2 + 10 d = 03-21
            ("d", T2, 0.0),  # reach, stays
        ]
    )
    assert_frame_equal(got, want)


def test_churn_labels_only_for_buyers() -> None:
    got = labels_frame("churn")
    want = expected(
        [
            ("a", T1, 0.0),
            ("b", T1, np.nan),  # never bought before T1: no churn label
            ("c", T1, 1.0),
            ("a", T2, 1.0),
            ("b", T2, np.nan),
            ("c", T2, 1.0),
            ("d", T2, np.nan),
        ]
    )
    assert_frame_equal(got, want)


def test_clv_labels_are_net_revenue_in_window() -> None:
    got = labels_frame("clv")
    want = expected(
        [
            ("a", T1, 20.0),  # 25 bought at T1, 5 refunded (a positive refund still reduces)
            ("b", T1, 0.0),
            ("c", T1, 0.0),
            ("a", T2, 0.0),
            ("b", T2, 22.5),  # 10 at exactly T2 + 12.5
            ("c", T2, 0.0),
            ("d", T2, 0.0),
        ]
    )
    assert_frame_equal(got, want)


def test_incomplete_label_window_is_refused() -> None:
    features = build_features(LOG, cutoffs=[T1, T2])
    with pytest.raises(IncompleteLabelWindow, match="2024-03-11"):
        build_labels(LOG, features, task="churn", horizon_days=30, end=END)
    # the default end is midnight after the last event (03-31 -> 04-01): 21 days fit, 22 don't
    assert observation_end(LOG) == END
    build_labels(LOG, features, task="churn", horizon_days=21, end=observation_end(LOG))
    with pytest.raises(IncompleteLabelWindow):
        build_labels(LOG, features, task="clv", horizon_days=22, end=observation_end(LOG))


def test_window_activity_counts_only_inside_window() -> None:
    got = window_activity(
        LOG,
        [T1],
        horizon_days=10,
        qualifying_events=["purchase"],
        purchase_events=["purchase"],
        refund_events=["refund"],
    ).sort_values("customer_id", ignore_index=True)
    assert got["customer_id"].tolist() == ["a", "d"]
    assert got["n_qualifying"].tolist() == [1, 0]
    assert got["net_revenue"].tolist() == [20.0, 0.0]


def test_future_events_change_labels_never_features() -> None:
    future = make_events(
        [
            ("c", "2024-03-01 00:00", "purchase", 70.0),  # exactly at T1
            ("c", "2024-03-03", "referral", None),
            ("b", "2024-03-02", "purchase", 1.0),
        ]
    )
    extended = pd.concat([LOG, future], ignore_index=True)
    before = build_features(LOG, cutoffs=[T1])
    after = build_features(extended, cutoffs=[T1])
    assert_frame_equal(before, after)
    for task in ("next_stage", "churn", "clv"):
        old = build_labels(LOG, before, task=task, horizon_days=10, end=END)  # type: ignore[arg-type]
        new = build_labels(extended, after, task=task, horizon_days=10, end=END)  # type: ignore[arg-type]
        assert not np.array_equal(old, new, equal_nan=True), task


def test_time_split_has_no_label_overlap() -> None:
    cuts = list(pd.date_range("2024-01-01", periods=24, freq="MS", tz="UTC"))
    end = pd.Timestamp("2026-01-01", tz="UTC")
    split = time_split(cuts, horizon_days=90, end=end, max_train_cutoffs=5)
    assert split.eval == pd.Timestamp("2025-10-01", tz="UTC")  # 10-01 + 90 d <= 2026-01-01
    assert split.valid == pd.Timestamp("2025-07-01", tz="UTC")  # + 92 d reaches eval exactly
    assert split.train[-1] == pd.Timestamp("2025-04-01", tz="UTC")
    assert len(split.train) == 5
    for cut in split.train:
        assert cut + pd.Timedelta(days=90) <= split.valid
    with pytest.raises(SplitError, match="customer"):
        time_split(cuts, horizon_days=365, end=end)


def test_customer_groups_are_stable_and_independent_of_others() -> None:
    ids = pd.Series([f"C{i:05d}" for i in range(5000)])
    groups = customer_groups(ids, seed=3)
    assert groups[:10].tolist() == customer_groups(ids[:10], seed=3).tolist()
    shares = pd.Series(groups).value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.03 and abs(shares["eval"] - 0.2) < 0.03
    assert (groups != customer_groups(ids, seed=4)).any()
