"""BG/NBD + Gamma-Gamma baseline: RFM summary by hand, and the classic CDNOW protocol."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lifecycle.features.io import load_events
from lifecycle.features.mapping import load_mapping
from lifecycle.models.baselines import PREDICTION_COLUMNS, BetaGeoGammaGammaBaseline, rfm_summary

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pymc_marketing") is None,
    reason="pymc-marketing not installed (optional extra 'baselines': uv sync --all-extras)",
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CDNOW_SAMPLE = DATA / "cdnow" / "CDNOW_sample.txt"
needs_cdnow = pytest.mark.skipif(
    not CDNOW_SAMPLE.is_file(), reason=f"CDNOW 1/10 sample not found at {CDNOW_SAMPLE}"
)

CUTOFF = pd.Timestamp("2024-03-01", tz="UTC")


def _log() -> pd.DataFrame:
    rows = [
        # a: two purchases on Jan 1 are one period worth 15; the one at the cutoff is excluded
        ("a", "2024-01-01 10:00", "purchase", 10.0),
        ("a", "2024-01-01 18:00", "purchase", 5.0),
        ("a", "2024-01-15 09:00", "purchase", 20.0),
        ("a", "2024-01-20 12:00", "visit", None),
        ("a", "2024-02-12 23:59", "purchase", 40.0),
        ("a", "2024-03-01 00:00", "purchase", 100.0),
        ("a", "2024-03-02 08:00", "refund", -40.0),
        # b: one purchase before the cutoff, one after
        ("b", "2024-02-01 12:00", "purchase", 50.0),
        ("b", "2024-03-05 12:00", "purchase", 70.0),
        # c: half of its purchase revenue refunded before the cutoff
        ("c", "2024-01-08 07:00", "purchase", 10.0),
        ("c", "2024-01-22 07:00", "purchase", 30.0),
        ("c", "2024-01-25 07:00", "refund", -20.0),
        # d: a visit, and a purchase exactly at the cutoff: not in the summary
        ("d", "2024-02-20 10:00", "visit", None),
        ("d", "2024-03-01 00:00", "purchase", 25.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "event_type", "revenue"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"]).dt.tz_localize("UTC")
    return frame


@pytest.mark.parametrize("unit", [7.0, 1.0])
def test_rfm_summary_by_hand(unit):
    summary = rfm_summary(_log(), cutoff=CUTOFF, time_unit_days=unit)
    expected = pd.DataFrame(
        {
            "frequency": np.array([2, 0, 1], dtype="int64"),
            # days: a first Jan 1, last Feb 12, b Feb 1 only, c Jan 8 .. Jan 22; cutoff Mar 1
            "recency": np.array([42.0, 0.0, 14.0]) / unit,
            "T": np.array([60.0, 29.0, 53.0]) / unit,
            "monetary_value": [30.0, 0.0, 30.0 * (1 - 20 / 40)],
        },
        index=pd.Index(["a", "b", "c"], name="customer_id"),
    )
    pd.testing.assert_frame_equal(summary, expected)


def test_rfm_summary_naive_cutoff_is_utc_and_empty_before_first_purchase():
    log = _log()
    naive = rfm_summary(log, cutoff=pd.Timestamp("2024-03-01"))
    pd.testing.assert_frame_equal(naive, rfm_summary(log, cutoff=CUTOFF))
    empty = rfm_summary(log, cutoff=pd.Timestamp("2024-01-01", tz="UTC"))
    assert empty.empty
    assert list(empty.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert empty.index.name == "customer_id"


@pytest.fixture(scope="module")
def cdnow():
    """Classic protocol: calibration 1997-01-01 .. 1997-09-30, holdout 39 weeks to 1998-06-30."""
    events = load_events(CDNOW_SAMPLE, mapping=load_mapping("cdnow_sample")).events
    cutoff, end = pd.Timestamp("1997-10-01", tz="UTC"), pd.Timestamp("1998-07-01", tz="UTC")
    summary = rfm_summary(events, cutoff=cutoff)
    # FAST_COMPILE: no C compilation (~6 s instead of ~40-70 s on a clean machine), same estimates
    model = BetaGeoGammaGammaBaseline(compile_mode="FAST_COMPILE").fit(summary)
    horizon_days = (end - cutoff).days
    prediction = model.predict(summary, horizon_days=horizon_days)
    holdout = events.loc[
        (events["event_ts"] >= cutoff)
        & (events["event_ts"] < end)
        & (events["event_type"] == "purchase")
    ]
    by_customer = holdout.groupby("customer_id")
    actual = pd.DataFrame(
        {
            "purchases": by_customer["event_ts"].agg(lambda ts: ts.dt.floor("D").nunique()),
            "revenue": by_customer["revenue"].sum(),
        }
    ).reindex(summary.index, fill_value=0)
    return summary, model, prediction, actual, horizon_days


@pytest.mark.slow
@needs_cdnow
def test_cdnow_fit_and_holdout(cdnow):
    summary, model, prediction, actual, _ = cdnow
    assert len(summary) == 2357
    # Flat priors: MAP = MLE, close to the published r=0.243, alpha=4.414, a=0.793, b=2.426
    # (which measure T to 1997-09-30, one day shorter than here).
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert model.params_[name] == pytest.approx(value, rel=0.05), name
    assert list(prediction.columns) == list(PREDICTION_COLUMNS)
    assert prediction.index.equals(summary.index)
    assert prediction.notna().all().all()

    bought = actual["purchases"] > 0
    assert roc_auc_score(bought, prediction["probability_purchase"]) > 0.74
    assert actual["purchases"].sum() == 1882  # README: holdout repeat transactions
    expected = prediction["expected_purchases"].sum()
    assert expected == pytest.approx(actual["purchases"].sum(), rel=0.15)
    clv = prediction["expected_clv"]
    assert clv.sum() == pytest.approx(actual["revenue"].sum(), rel=0.25)
    assert np.allclose(clv, prediction["expected_purchases"] * prediction["expected_spend"])


@pytest.mark.slow
@needs_cdnow
def test_cdnow_probabilities_and_determinism(cdnow):
    summary, model, prediction, _, horizon_days = cdnow
    x, T = summary["frequency"].to_numpy(), summary["T"].to_numpy()
    t = horizon_days / 7.0
    p_buy = prediction["probability_purchase"].to_numpy()
    # frequency 0: alive for sure, P(no purchase) = ((alpha + T) / (alpha + T + t))^r
    r, alpha = model.params_["r"], model.params_["alpha"]
    zero = x == 0
    np.testing.assert_allclose(p_buy[zero], 1 - ((alpha + T[zero]) / (alpha + T[zero] + t)) ** r)
    # frequency > 0: agrees with the library's expected_probability_no_purchase
    data = summary.rename_axis("customer_id").reset_index()
    library = model.bg_model_.expected_probability_no_purchase(t, data).to_numpy().ravel()
    np.testing.assert_allclose(p_buy[x > 0], 1 - library[x > 0], rtol=1e-9, atol=1e-12)
    assert (prediction["probability_alive"][zero] == 1).all()
    # Gamma-Gamma: customers without repeat purchases get the population mean
    p, q, v = model.params_["p"], model.params_["q"], model.params_["v"]
    np.testing.assert_allclose(prediction["expected_spend"][zero], p * v / (q - 1))
    again = BetaGeoGammaGammaBaseline(compile_mode="FAST_COMPILE").fit(summary)
    pd.testing.assert_frame_equal(again.predict(summary, horizon_days=horizon_days), prediction)


def test_a_log_without_amounts_fits_bgnbd_alone_for_churn():
    rng = np.random.default_rng(5)
    n = 300
    summary = pd.DataFrame(
        {
            "frequency": rng.poisson(1.5, n).astype(float),
            "T": rng.uniform(10, 52, n),
            "monetary_value": 0.0,
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    summary["recency"] = np.where(
        summary["frequency"] > 0, summary["T"] * rng.uniform(0.2, 1.0, n), 0.0
    )
    model = BetaGeoGammaGammaBaseline(compile_mode="FAST_COMPILE").fit(summary)
    assert model.gg_model_ is None and set(model.params_) == {"r", "alpha", "a", "b"}
    pred = model.predict(summary, horizon_days=90)
    assert pred["expected_clv"].isna().all() and pred["expected_spend"].isna().all()
    p = pred["probability_purchase"].to_numpy()
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
