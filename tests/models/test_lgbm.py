"""The LightGBM estimators: calibration under drift, intervals, eligibility, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifecycle.models.lgbm import PROBABILITY_FLOOR, ClvRegressor, LifecycleClassifier
from lifecycle.models.rules import RfmCellRate, last_period
from lifecycle.models.tasks import eligible
from lifecycle.training.metrics import expected_calibration_error


def frame(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two informative features; ``shift`` moves the base rate (a later cutoff's drift)."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "stage_code": 2,
            "n_purchases": 1,
        }
    )
    logit = 1.5 * x["x1"] - x["x2"] - 1.0 + shift
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return x, y.to_numpy()


def test_calibration_on_later_cutoff_lowers_ece_under_drift() -> None:
    train, y_train = frame(4000, 0)
    valid, y_valid = frame(4000, 1, shift=1.2)  # the later cutoff: base rate moved up
    test, y_test = frame(4000, 2, shift=1.2)
    for method in ("isotonic", "sigmoid"):
        clf = LifecycleClassifier(
            "churn", ["x1", "x2"], params={"num_leaves": 7}, calibration=method
        ).fit(train, y_train, valid, y_valid)
        before = expected_calibration_error(y_test, clf.predict_uncalibrated(test))
        after = expected_calibration_error(y_test, clf.predict_proba(test))
        assert before > 0.1, method
        assert after < before / 3, (method, before, after)


def test_auto_calibration_picks_sigmoid_for_small_validation() -> None:
    train, y_train = frame(1000, 0)
    valid, y_valid = frame(500, 1)
    clf = LifecycleClassifier("churn", ["x1", "x2"], params={"num_leaves": 7}).fit(
        train, y_train, valid, y_valid
    )
    assert clf.calibration_method_ == "sigmoid"


def test_same_seed_gives_identical_model() -> None:
    train, y_train = frame(2000, 0)
    valid, y_valid = frame(1000, 1)
    params = {"num_leaves": 15, "feature_fraction": 0.7, "bagging_fraction": 0.7, "bagging_freq": 1}
    a = LifecycleClassifier("churn", ["x1", "x2"], params=params, seed=5).fit(
        train, y_train, valid, y_valid
    )
    b = LifecycleClassifier("churn", ["x1", "x2"], params=params, seed=5).fit(
        train, y_train, valid, y_valid
    )
    assert a.booster_.model_to_string() == b.booster_.model_to_string()
    np.testing.assert_array_equal(a.predict_proba(valid), b.predict_proba(valid))


def test_ineligible_rows_get_nan() -> None:
    train, y_train = frame(600, 0)
    clf = LifecycleClassifier("churn", ["x1", "x2"], params={"num_leaves": 4}).fit(
        train[:400], y_train[:400], train[400:], y_train[400:]
    )
    rows = train.head(3).assign(n_purchases=[0, 1, 2])
    out = clf.predict_frame(rows)
    assert list(out.columns) == ["churn_risk"]
    assert np.isnan(out["churn_risk"].iloc[0]) and out["churn_risk"].iloc[1:].notna().all()
    assert eligible("next_stage", rows.assign(stage_code=[4, 3, 0])).tolist() == [
        False,
        True,
        True,
    ]


def test_clv_interval_covers_about_80_percent_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    n = 6000
    x = pd.DataFrame({"x1": rng.normal(size=n), "stage_code": 2, "n_purchases": 1})
    buys = rng.random(n) < 1 / (1 + np.exp(-x["x1"]))
    y = np.where(buys, rng.lognormal(3 + 0.5 * x["x1"], 0.8), 0.0)
    model = ClvRegressor(["x1"], params={"num_leaves": 7}).fit(
        x[:3000], y[:3000], x[3000:4500], y[3000:4500]
    )
    out = model.predict_frame(x[4500:])
    coverage = ((out["clv_p10"] <= y[4500:]) & (y[4500:] <= out["clv_p90"])).mean()
    # conformal coverage is at least the target; the point mass at 0 makes it overshoot a bit
    assert 0.78 <= coverage <= 0.9
    assert (out["clv_p10"] <= out["clv"]).all() and (out["clv"] <= out["clv_p90"]).all()
    # the mean is roughly right in total
    assert out["clv"].sum() == pytest.approx(y[4500:].sum(), rel=0.15)


def test_rfm_cell_rate_falls_back_to_stage_then_overall() -> None:
    rows = pd.DataFrame(
        {"stage": ["conversion", "conversion", "retention"], "rfm_segment": ["New", "Lost", "New"]}
    )
    model = RfmCellRate().fit(rows, [1.0, 0.0, 0.5])
    unseen = pd.DataFrame({"stage": ["conversion", "loyalty"], "rfm_segment": ["Champions", "New"]})
    np.testing.assert_allclose(model.predict(unseen), [0.5, 0.5])
    np.testing.assert_allclose(model.predict(rows), [1.0, 0.0, 0.5])


def test_last_period_rules() -> None:
    rows = pd.DataFrame(
        {
            "days_in_stage": [5.0, 40.0],
            "days_since_last_purchase": [100.0, np.nan],
            "revenue_30d": [30.0, 0.0],
            "revenue_90d": [90.0, 9.0],
            "revenue_365d": [365.0, 36.5],
        }
    )
    assert last_period("next_stage", rows, horizon_days=30).tolist() == [1.0, 0.0]
    assert last_period("churn", rows, horizon_days=90).tolist() == [1.0, 1.0]
    assert last_period("clv", rows, horizon_days=365).tolist() == [365.0, 36.5]
    assert last_period("clv", rows, horizon_days=180).tolist() == pytest.approx([180.0, 18.0])


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_numpy_calibration_equals_sklearn(method: str) -> None:
    """The serving fast path applies the fitted calibrator with numpy: same numbers."""
    train, y_train = frame(3000, 0)
    valid, y_valid = frame(3000, 1, shift=0.8)
    clf = LifecycleClassifier("churn", ["x1", "x2"], params={"num_leaves": 7}, calibration=method)
    clf.fit(train, y_train, valid, y_valid)
    margin = clf.raw_score_matrix(valid[["x1", "x2"]].to_numpy(np.float64))
    if method == "isotonic":
        expected = clf.calibrator_.predict(1 / (1 + np.exp(-margin)))
    else:
        expected = clf.calibrator_.predict_proba(margin.reshape(-1, 1))[:, 1]
    expected = np.clip(expected, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    np.testing.assert_allclose(clf.predict_proba(valid), expected, rtol=0, atol=1e-12)
    matrix_out = clf.predict_matrix(valid[["x1", "x2"]].to_numpy(np.float64))
    np.testing.assert_array_equal(matrix_out["churn_risk"], clf.predict_proba(valid))
