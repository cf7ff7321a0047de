"""Sticky loyalty on transaction-only logs: point in time, and a funnel that never goes down."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from lifecycle.features import build
from lifecycle.features.build import build_features, loyalty_check_dates, monthly_cutoffs
from lifecycle.features.config import LifecycleConfig, RfmSettings, StageRules, StickyStages

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RECOMPUTED = LifecycleConfig(stages=StageRules(sticky=StickyStages(loyalty_days=0)))


def stage_drops(features: pd.DataFrame) -> int:
    """Count (customer, consecutive cutoffs) where the stage code went down."""
    codes = features.pivot(index="customer_id", columns="cutoff", values="stage_code")
    later, earlier = codes.iloc[:, 1:].to_numpy(), codes.iloc[:, :-1].to_numpy()
    both = ~np.isnan(later) & ~np.isnan(earlier)
    return int((later[both] < earlier[both]).sum())


def test_loyalty_check_dates_are_month_starts_between_first_event_and_cutoff():
    first = pd.Timestamp("2023-01-01 00:00", tz="UTC")
    got = loyalty_check_dates(first, pd.Timestamp("2023-04-15", tz="UTC"), None)
    assert [d.strftime("%m-%d") for d in got] == ["02-01", "03-01", "04-01"]
    assert loyalty_check_dates(first, pd.Timestamp("2023-04-01", tz="UTC"), None)[-1].month == 3
    assert loyalty_check_dates(first, pd.Timestamp("2023-04-15", tz="UTC"), 0) == []


def test_sticky_loyalty_funnel_never_goes_down_on_a_transaction_only_log(transaction_log):
    log = transaction_log()
    cuts = monthly_cutoffs(log)
    sticky = build_features(log, cutoffs=cuts)
    recomputed = build_features(log, cutoffs=cuts, config=RECOMPUTED)
    assert (sticky["stage"] == "loyalty").any()
    assert stage_drops(recomputed) > 0  # without stickiness customers fall out of loyalty
    assert stage_drops(sticky) == 0
    # sticky loyalty only adds former top-tier customers; it never removes a current one
    now_top = recomputed["stage"] == "loyalty"
    assert (sticky.loc[now_top, "stage"] == "loyalty").all()
    assert (sticky["stage"] == "loyalty").sum() > now_top.sum()
    # everything except the stage is untouched
    others = [c for c in sticky.columns if c not in ("stage", "stage_code")]
    assert_frame_equal(sticky[others], recomputed[others])


def test_sticky_loyalty_reads_only_events_before_the_cutoff(transaction_log):
    log = transaction_log(seed=1)
    for cut in pd.to_datetime(["2023-05-17", "2023-09-01", "2023-12-10"], utc=True):
        full = build_features(log, cutoffs=cut)
        truncated = build_features(log[log["event_ts"] < cut], cutoffs=cut)
        assert_frame_equal(full, truncated)


def test_sticky_loyalty_of_a_cutoff_does_not_depend_on_the_other_cutoffs(transaction_log):
    log = transaction_log(seed=2)
    cuts = list(pd.to_datetime(["2023-04-10", "2023-08-01", "2023-11-20"], utc=True))
    together = build_features(log, cutoffs=cuts)
    for cut in cuts:
        alone = build_features(log, cutoffs=cut)
        assert_frame_equal(together[together["cutoff"] == cut].reset_index(drop=True), alone)


def test_sticky_loyalty_days_keeps_loyalty_for_that_long_after_the_last_check(transaction_log):
    log = transaction_log(seed=3)
    cuts = monthly_cutoffs(log)
    keep = LifecycleConfig(stages=StageRules(sticky=StickyStages(loyalty_days=60)))
    codes = {
        name: build_features(log, cutoffs=cuts, config=cfg).pivot(
            index="customer_id", columns="cutoff", values="stage_code"
        )
        for name, cfg in {"now": RECOMPUTED, "60": keep, "ever": LifecycleConfig()}.items()
    }
    top = codes["now"] == 4  # in the top tier at that month start (a check date)
    for j, cut in enumerate(cuts):
        recent = [k for k in range(j) if (cut - cuts[k]).days <= 60]
        expected = top[cut] | top[[cuts[k] for k in recent]].any(axis=1)
        assert ((codes["60"][cut] == 4) == expected).all(), cut
    assert (codes["60"] == 4).sum().sum() < (codes["ever"] == 4).sum().sum()


def test_sticky_loyalty_keeps_no_customer_once_loyalty_events_exist(transaction_log):
    log = transaction_log(seed=4)
    review = log.iloc[:1].assign(event_type="review", revenue=np.nan)
    got = build_features(pd.concat([log, review]), cutoffs="2023-12-01")
    # advocacy is observable in this log: loyalty means a review, not a past RFM tier
    assert set(got.loc[got["stage"] == "loyalty", "customer_id"]) == {review["customer_id"].iloc[0]}


@pytest.mark.skipif(
    not (DATA / "cdnow" / "CDNOW_sample.txt").is_file(),
    reason=f"CDNOW sample not found at {DATA / 'cdnow' / 'CDNOW_sample.txt'} (../shared/data)",
)
def test_sticky_loyalty_funnel_never_goes_down_on_the_cdnow_sample():
    from lifecycle.features.io import load_events
    from lifecycle.features.mapping import load_mapping

    events = load_events(
        DATA / "cdnow" / "CDNOW_sample.txt", mapping=load_mapping("cdnow_sample")
    ).events
    cuts = monthly_cutoffs(events)
    sticky = build_features(events, cutoffs=cuts)
    assert (sticky["stage"] == "loyalty").any()
    assert stage_drops(sticky) == 0
    assert stage_drops(build_features(events, cutoffs=cuts, config=RECOMPUTED)) > 0


def test_sticky_loyalty_when_scored_alone_against_a_reference(transaction_log):
    """Serving's path: one customer's checks are scored against the reference population."""
    log = transaction_log(seed=7, customers=60)
    cut = pd.Timestamp("2023-12-01", tz="UTC")
    reference = build_features(log, cutoffs=cut)
    # a heavy buyer in January and February 2023 who never came back
    days = pd.date_range("2023-01-01", "2023-02-27", freq="D", tz="UTC")
    burst = log.iloc[[0] * len(days)].assign(
        customer_id="burst", event_ts=days.astype("datetime64[us, UTC]"), revenue=1000.0
    )
    for config, stage in [(LifecycleConfig(), "loyalty"), (RECOMPUTED, "retention")]:
        got = build_features(burst, cutoffs=cut, config=config, rfm_reference=reference)
        assert got["rfm_segment"].tolist() != ["Champions"]  # 9 months since the last purchase
        assert got["stage"].tolist() == [stage]


def stages_by_full_builds(
    log: pd.DataFrame,
    cut: pd.Timestamp,
    config: LifecycleConfig,
    reference: pd.DataFrame | None = None,
) -> pd.Series:
    """Sticky stage codes at ``cut`` the slow way: a whole build at every check date."""
    now = config.model_copy(update={"stages": StageRules(sticky=StickyStages(loyalty_days=0))})
    keep = config.stages.sticky.loyalty_days
    found: set[str] = set()
    for date in loyalty_check_dates(log["event_ts"].min(), cut, keep):
        at = build_features(log, cutoffs=date, config=now, rfm_reference=reference)
        found |= set(at.loc[at["stage"] == "loyalty", "customer_id"])
    at_cut = build_features(log, cutoffs=cut, config=now, rfm_reference=reference)
    code = at_cut.set_index("customer_id")["stage_code"]
    return code.where(~((code == 3) & code.index.isin(found)), 4)


@pytest.mark.parametrize(
    ("recency", "keep"), [("absolute", None), ("rhythm", None), ("absolute", 75)]
)
def test_sticky_loyalty_equals_whole_builds_at_every_check_date(transaction_log, recency, keep):
    """The checks' subset query gives the stages that whole builds at each date give."""
    log = transaction_log(seed=5, customers=90)
    config = LifecycleConfig(
        rfm=RfmSettings(recency=recency), stages=StageRules(sticky=StickyStages(loyalty_days=keep))
    )
    cut = pd.Timestamp("2023-11-17", tz="UTC")  # mid-month: no check date is a cutoff
    got = build_features(log, cutoffs=cut, config=config).set_index("customer_id")["stage_code"]
    expected = stages_by_full_builds(log, cut, config)
    assert_series_equal(got, expected, check_dtype=False)
    now = build_features(log, cutoffs=cut, config=RECOMPUTED)
    assert (got == 4).sum() > (now["stage_code"] == 4).sum()  # the checks found someone


def test_sticky_loyalty_against_a_reference_equals_whole_builds_and_one_customer_alone(
    transaction_log,
):
    """Serving's path: scored against a reference, alone or in a batch, as whole builds say."""
    log = transaction_log(seed=6, customers=90)
    reference = build_features(log, cutoffs="2023-10-01")
    cut = pd.Timestamp("2023-12-20", tz="UTC")
    got = build_features(log, cutoffs=cut, rfm_reference=reference).set_index("customer_id")
    expected = stages_by_full_builds(log, cut, LifecycleConfig(), reference)
    assert_series_equal(got["stage_code"], expected, check_dtype=False)
    kept = got.index[(got["stage"] == "loyalty") & (got["rfm_segment"] != "Champions")]
    assert len(kept) > 0
    for customer in [kept[0], got.index[0]]:
        alone = build_features(
            log[log["customer_id"] == customer], cutoffs=cut, rfm_reference=reference, threads=1
        )
        assert_frame_equal(alone, got.loc[[customer]].reset_index())


def test_sticky_loyalty_checks_in_many_queries_give_the_same_stages(transaction_log, monkeypatch):
    """A log too big for one checks query is checked a few dates at a time: same stages."""
    log = transaction_log(seed=8)
    cuts = ["2023-06-15", "2023-12-10"]
    together = build_features(log, cutoffs=cuts)
    monkeypatch.setattr(build, "CHECK_EVENT_ROWS", 2 * len(log))  # two dates per query
    assert_frame_equal(build_features(log, cutoffs=cuts), together)
    monkeypatch.setattr(build, "CHECK_EVENT_ROWS", 1)  # one date per query
    assert_frame_equal(build_features(log, cutoffs=cuts), together)
