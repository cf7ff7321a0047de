"""Campaign uplift: the training frame (exact labels, no leakage) and the two-model learner."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from lifecycle.features.build import feature_columns
from lifecycle.features.simulate import simulate
from lifecycle.models.uplift import (
    FRAME_COLUMNS,
    TwoModelUplift,
    campaign_frame,
    holdout_mask,
    qini_coefficient,
    read_campaigns,
)

UTC = "UTC"
WINDOW = pd.Timedelta(days=30)


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz=UTC)


# --- a hand-built log --------------------------------------------------------------------------


def tiny_log() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        ("a", "2024-01-01", "signup", None),
        ("a", "2024-01-05", "purchase", 20.0),
        ("a", "2024-02-01", "campaign_exposure", None),
        ("a", "2024-02-01", "purchase", 30.0),  # at the send: in the window, not a feature
        ("a", "2024-03-01", "campaign_exposure", None),
        ("b", "2024-01-02", "signup", None),
        ("b", "2024-03-02", "purchase", 25.0),  # exactly 30 days after the send: outside
        ("c", "2024-01-03", "signup", None),
        ("c", "2024-02-01", "campaign_exposure", None),
        ("c", "2024-02-20", "refund", -5.0),  # not a purchase
        ("c", "2024-02-20 12:00", "purchase", 15.0),
        ("c", "2024-03-15", "visit", None),  # the last event
        ("d", "2024-02-10", "signup", None),  # targeted before any event: no features
    ]
    events = pd.DataFrame(rows, columns=["customer_id", "event_ts", "event_type", "revenue"])
    events["event_ts"] = pd.to_datetime(events["event_ts"], utc=True, format="ISO8601")
    events["channel"] = None
    events["campaign_id"] = None
    campaigns = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "a"],
            "campaign_id": ["CMP-1", "CMP-1", "CMP-1", "CMP-1", "CMP-2"],
            "offer": ["bundle", "discount_10", "bundle", "bundle", "bundle"],
            # the second send's window ends after the last event: not observable yet
            "sent_ts": pd.to_datetime(["2024-02-01"] * 4 + ["2024-03-01"], utc=True),
            "group": ["treatment", "control", "treatment", "control", "treatment"],
        }
    )
    return events, campaigns


def test_campaign_frame_tiny_log_exact() -> None:
    events, campaigns = tiny_log()
    frame = campaign_frame(events, campaigns)
    expected = pd.DataFrame(
        {
            "customer_id": pd.Series(["a", "b", "c"], dtype="str"),
            "campaign_id": pd.Series(["CMP-1"] * 3, dtype="str"),
            "cutoff": pd.Series([ts("2024-02-01")] * 3).astype("datetime64[us, UTC]"),
            "offer": pd.Series(["bundle", "discount_10", "bundle"], dtype="str"),
            "treated": [True, False, True],
            "purchased": np.array([1, 0, 1], dtype=np.int64),
            "stage": pd.Series(["conversion", "acquisition", "acquisition"], dtype="str"),
            "n_purchases": np.array([1, 0, 0], dtype=np.int64),
            "n_campaign_exposure": np.array([0, 0, 0], dtype=np.int64),
        }
    )
    columns = list(expected.columns)
    pd.testing.assert_frame_equal(frame[columns], expected, check_dtype=False)
    assert list(frame.columns) == [*FRAME_COLUMNS, *feature_columns()]
    assert frame["treated"].dtype == bool
    assert frame["purchased"].dtype == np.int64


def test_campaign_frame_shuffled_input_gives_same_frame() -> None:
    events, campaigns = tiny_log()
    shuffled = campaign_frame(
        events.sample(frac=1.0, random_state=3), campaigns.sample(frac=1.0, random_state=4)
    )
    pd.testing.assert_frame_equal(shuffled, campaign_frame(events, campaigns))


def test_campaign_frame_without_a_complete_window_is_a_clear_error() -> None:
    events, campaigns = tiny_log()
    with pytest.raises(ValueError, match="no campaign send has a complete 60-day outcome window"):
        campaign_frame(events, campaigns, window_days=60)


def test_read_campaigns_rejects_unknown_groups() -> None:
    _, campaigns = tiny_log()
    campaigns.loc[0, "group"] = "holdout"
    with pytest.raises(ValueError, match="treatment or control; found 'holdout'"):
        read_campaigns(campaigns)


# --- a small simulation ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    summary = simulate(3000, seed=1, out_dir=tmp_path_factory.mktemp("uplift_sim"))
    return {name: Path(path) for name, path in summary.files.items()}


@pytest.fixture(scope="module")
def events(simulation: dict[str, Path]) -> pd.DataFrame:
    return pd.read_parquet(simulation["events"])


@pytest.fixture(scope="module")
def frame(simulation: dict[str, Path]) -> pd.DataFrame:
    return campaign_frame(simulation["events"], simulation["campaigns"], max_campaigns=24)


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> TwoModelUplift:
    return TwoModelUplift(feature_columns()).fit(frame)


def test_campaign_frame_uses_latest_complete_sends(
    frame: pd.DataFrame, events: pd.DataFrame, simulation: dict[str, Path]
) -> None:
    sends = sorted(pd.read_parquet(simulation["campaigns"])["sent_ts"].unique())
    last = events["event_ts"].max()
    complete = [s for s in sends if s + WINDOW <= last]
    assert len(complete) < len(sends)  # the log ends inside the last send's window
    assert sorted(frame["cutoff"].unique()) == complete[-24:]
    assert "true_uplift" not in frame.columns


def test_campaign_frame_features_do_not_see_the_exposure(
    frame: pd.DataFrame, events: pd.DataFrame
) -> None:
    treated = frame.loc[frame["treated"], ["customer_id", "cutoff", "n_campaign_exposure"]]
    exposures = events.loc[
        events["event_type"] == "campaign_exposure", ["customer_id", "event_ts"]
    ].merge(treated, on="customer_id")
    at_send = exposures["event_ts"] == exposures["cutoff"]
    before = exposures["event_ts"] < exposures["cutoff"]
    keys = ["customer_id", "cutoff"]
    exposed_at_send = exposures[at_send].groupby(keys).size()
    assert len(exposed_at_send) == len(treated)  # every treated row was exposed at the send
    seen = exposures[before].groupby(keys).size().rename("expected")
    check = treated.merge(seen, left_on=keys, right_index=True, how="left").fillna({"expected": 0})
    np.testing.assert_array_equal(check["n_campaign_exposure"], check["expected"])
    gap = frame.loc[frame["treated"], "days_since_last_campaign_exposure"].dropna()
    assert (gap > 0).all()


def test_campaign_frame_labels_match_direct_computation(
    frame: pd.DataFrame, events: pd.DataFrame
) -> None:
    purchases = events[events["event_type"] == "purchase"]
    sample = pd.concat(
        [
            frame[frame["purchased"] == 1].sample(10, random_state=0),
            frame[frame["purchased"] == 0].sample(10, random_state=0),
        ]
    )
    for row in sample.itertuples():
        mine = purchases[purchases["customer_id"] == row.customer_id]["event_ts"]
        bought = ((mine >= row.cutoff) & (mine < row.cutoff + WINDOW)).any()
        assert row.purchased == int(bought), row.customer_id


def test_two_model_uplift_predicts_finite_values_for_every_offer(
    model: TwoModelUplift, frame: pd.DataFrame
) -> None:
    assert model.offers == ("bundle", "discount_10", "double_points", "free_shipping")
    assert model.skipped_ == {}
    scored = frame.iloc[::7].set_index(pd.Index(np.arange(0, len(frame), 7) * 10))
    uplift = model.predict_frame(scored)
    assert list(uplift.columns) == list(model.offers)
    assert uplift.index.equals(scored.index)
    assert np.isfinite(uplift.to_numpy()).all()
    assert ((uplift >= -1) & (uplift <= 1)).all().all()


def test_two_model_uplift_observed_ate_is_positive_on_average(
    model: TwoModelUplift, frame: pd.DataFrame
) -> None:
    summary = model.summary()
    for offer, entry in summary.items():
        rows = frame[frame["offer"] == offer]
        rates = rows.groupby("treated")["purchased"].mean()
        assert entry["observed_ate"] == pytest.approx(rates[True] - rates[False])
        assert entry["rows_treated"] + entry["rows_control"] == len(rows)
        assert entry["qini"] is not None and np.isfinite(entry["qini"])
        assert entry["skipped"] is None
    assert np.mean([entry["observed_ate"] for entry in summary.values()]) > 0


def test_two_model_uplift_survives_joblib(
    model: TwoModelUplift, frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "uplift.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    assert loaded.feature_names == model.feature_names
    head = frame.head(50)
    pd.testing.assert_frame_equal(loaded.predict_frame(head), model.predict_frame(head))


# --- a hand-built randomised experiment --------------------------------------------------------


def experiment(n: int, seed: int) -> pd.DataFrame:
    """Treatment adds 25 points of purchase probability in segment 1 and nothing in segment 0."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 2, size=n)
    treated = rng.random(n) < 0.5
    p = 0.1 + 0.25 * treated * segment
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "offer": "bundle",
            "treated": treated,
            "purchased": (rng.random(n) < p).astype(np.int64),
            "segment": segment.astype(float),
            "noise": rng.normal(size=n),
        }
    )


def test_two_model_uplift_ranks_the_responsive_segment_first() -> None:
    train = experiment(6000, seed=0)
    small = experiment(150, seed=1).assign(offer="free_shipping")
    model = TwoModelUplift(["segment", "noise"], seed=3).fit(pd.concat([train, small]))
    assert model.offers == ("bundle",)
    n_treated = int(small["treated"].sum())
    assert model.skipped_ == {"free_shipping": f"treated arm has {n_treated} rows, fewer than 200"}
    test = experiment(4000, seed=2)
    uplift = model.predict_frame(test)["bundle"].groupby(test["segment"]).mean()
    assert uplift[1.0] == pytest.approx(0.25, abs=0.06)
    assert uplift[0.0] == pytest.approx(0.0, abs=0.04)
    summary = model.summary()
    # a perfect order scores 0.03125 here (responders are half the customers, +0.25 each)
    assert 0 < summary["bundle"]["qini"] < 0.04
    assert summary["free_shipping"]["mean_predicted_uplift"] is None


def test_two_model_uplift_same_seed_same_predictions() -> None:
    data = experiment(2000, seed=4)
    first = TwoModelUplift(["segment", "noise"], num_boost_round=30).fit(data)
    second = TwoModelUplift(["segment", "noise"], num_boost_round=30).fit(data)
    pd.testing.assert_frame_equal(first.predict_frame(data), second.predict_frame(data))
    assert first.summary() == second.summary()


def test_two_model_uplift_unfitted_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        TwoModelUplift(["x"]).predict_frame(pd.DataFrame({"x": [1.0]}))


# --- the Qini coefficient ----------------------------------------------------------------------


def test_qini_coefficient_rewards_finding_the_responders() -> None:
    treated = np.array([1, 0] * 50, dtype=bool)
    responder = np.repeat([1, 0], 50)  # the first 50 customers buy only when treated
    outcome = (treated & (responder == 1)).astype(int)
    right = qini_coefficient(responder.astype(float), treated, outcome)
    wrong = qini_coefficient(-responder.astype(float), treated, outcome)
    assert right > 0 > wrong
    assert right == pytest.approx(0.0625)  # area 0.1875 minus the random line's 0.125
    assert qini_coefficient(np.zeros(100), treated, outcome) == pytest.approx(0.0)


def test_qini_coefficient_ignores_row_order_and_needs_both_arms() -> None:
    rng = np.random.default_rng(0)
    uplift = rng.integers(0, 5, size=200).astype(float)  # many ties
    treated = rng.random(200) < 0.5
    outcome = rng.random(200) < 0.3
    order = rng.permutation(200)
    assert qini_coefficient(uplift[order], treated[order], outcome[order]) == pytest.approx(
        qini_coefficient(uplift, treated, outcome)
    )
    assert np.isnan(qini_coefficient(uplift, np.ones(200, dtype=bool), outcome))


def test_holdout_mask_is_per_customer_and_order_free() -> None:
    ids = pd.Series([f"c{i % 40}" for i in range(400)])
    mask = holdout_mask(ids, share=0.3, seed=7)
    assert (pd.Series(mask).groupby(ids).nunique() == 1).all()
    shuffled = ids.sample(frac=1.0, random_state=1)
    np.testing.assert_array_equal(
        holdout_mask(shuffled, share=0.3, seed=7), pd.Series(mask, index=ids.index)[shuffled.index]
    )
