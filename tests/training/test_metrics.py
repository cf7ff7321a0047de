"""Evaluation metrics: exact values on tiny hand-computed arrays."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from lifecycle.training.metrics import (
    CLASSIFICATION_KEYS,
    REGRESSION_KEYS,
    classification_metrics,
    decile_mape,
    expected_calibration_error,
    lift_and_capture,
    metrics_by_group,
    normalized_gini,
    regression_metrics,
)

# --- expected_calibration_error ---------------------------------------------------------------


def test_expected_calibration_error_hand_computed():
    # bins (width 0.1): 0.05 -> 0, 0.15 -> 1, 0.55 -> 5, 0.95 and 0.95 -> 9
    # bin 0: |0 - 0.05| * 1/5 = 0.01      bin 1: |1 - 0.15| * 1/5 = 0.17
    # bin 5: |1 - 0.55| * 1/5 = 0.09      bin 9: |0.5 - 0.95| * 2/5 = 0.18
    # total 0.45
    y = [0, 1, 1, 1, 0]
    p = [0.05, 0.15, 0.55, 0.95, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.45)


def test_expected_calibration_error_perfectly_calibrated_bins_is_zero():
    # bin of 0.25: 1 positive in 4; bin of 0.75: 3 positives in 4
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_expected_calibration_error_bin_edges_are_left_closed():
    # 0.3 and 0.39 share bin [0.3, 0.4): |0.5 - 0.345| = 0.155.
    # (If 0.3 fell in bin 2 the answer would be 0.5 * 0.3 + 0.5 * 0.61 = 0.455.)
    assert expected_calibration_error([0, 1], [0.3, 0.39]) == pytest.approx(0.155)
    # 1.0 belongs to the last bin, 0.0 to the first: both exact.
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0


def test_expected_calibration_error_n_bins_changes_grouping():
    # one bin: |mean y - mean p| = |0.5 - 0.5| = 0; two bins: 0.5 * 0.1 + 0.5 * 0.1 = 0.1
    y, p = [0, 1], [0.1, 0.9]
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(0.0)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.1)


def test_expected_calibration_error_rejects_out_of_range():
    with pytest.raises(ValueError, match="prob"):
        expected_calibration_error([0, 1], [0.5, 1.2])


# --- lift_and_capture ---------------------------------------------------------------------------


def test_lift_and_capture_hand_computed():
    # n = 10, top 20% = 2 rows: scores 0.95 (y=0) and 0.9 (y=1) -> 1 positive of 3.
    # lift = (1/2) / (3/10) = 5/3, capture = 1/3
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    s = [0.9, 0.95, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    lift, capture = lift_and_capture(y, s, top=0.2)
    assert lift == pytest.approx(5 / 3)
    assert capture == pytest.approx(1 / 3)


def test_lift_and_capture_ties_keep_original_order():
    # all scores tie, top 50% = rows 0 and 1, both negative -> lift 0, capture 0
    lift, capture = lift_and_capture([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5], top=0.5)
    assert (lift, capture) == (0.0, 0.0)
    # same data, positives first -> both targeted: lift (2/2) / (2/4) = 2, capture 1
    assert lift_and_capture([1, 1, 0, 0], [0.5] * 4, top=0.5) == (2.0, 1.0)


def test_lift_and_capture_top_rows_is_ceil_without_float_noise():
    # 100 * 0.07 = 7.000000000000001 in floats, but the top is 7 rows, not 8.
    # positives are the 8 highest scores: top 7 catches 7 -> capture 7/8, lift 1 / (8/100) = 12.5
    y = np.zeros(100)
    y[:8] = 1
    score = np.arange(100, dtype=float)[::-1]
    lift, capture = lift_and_capture(y, score, top=0.07)
    assert capture == pytest.approx(0.875)
    assert lift == pytest.approx(12.5)
    # ceil(5 * 0.1) = 1 row: the highest score (y=1) -> lift 1 / (1/5) = 5
    assert lift_and_capture([0, 0, 0, 0, 1], [1, 2, 3, 4, 5], top=0.1) == (5.0, 1.0)


def test_lift_and_capture_no_positives_is_nan():
    lift, capture = lift_and_capture([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(lift) and math.isnan(capture)


# --- classification_metrics ---------------------------------------------------------------------


def test_classification_metrics_hand_computed():
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    m = classification_metrics(y, p)
    assert tuple(m) == CLASSIFICATION_KEYS
    assert m["n"] == 4
    assert m["positive_rate"] == 0.5
    assert m["mean_prediction"] == pytest.approx(1.65 / 4)
    # positive-negative pairs ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); not (0.35, 0.4)
    assert m["roc_auc"] == pytest.approx(0.75)
    # by score: 0.8 (y=1) P=1 R=.5; 0.4 (y=0); 0.35 (y=1) P=2/3 R=1 -> AP = .5*1 + .5*2/3
    assert m["pr_auc"] == pytest.approx(0.5 + 1 / 3)
    # -(ln .9 + ln .6 + ln .35 + ln .8) / 4
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    )
    assert m["log_loss"] == pytest.approx(0.4722879538, rel=1e-9)
    # (.01 + .16 + .4225 + .04) / 4
    assert m["brier"] == pytest.approx(0.158125)
    # bins 1, 4, 3, 8 with one row each: (0.1 + 0.4 + 0.65 + 0.2) / 4
    assert m["ece"] == pytest.approx(0.3375)
    # ceil(4 * 0.1) = 1 row, the 0.8 (y=1): lift 1 / 0.5 = 2, capture 1/2
    assert m["lift_top10"] == pytest.approx(2.0)
    assert m["capture_top10"] == pytest.approx(0.5)


def test_classification_metrics_single_class_is_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert math.isnan(m["lift_top10"]) and math.isnan(m["capture_top10"])
    # -(ln .9 + ln .8 + ln .7) / 3
    assert m["log_loss"] == pytest.approx(0.228393, rel=1e-5)
    assert m["brier"] == pytest.approx(0.14 / 3)
    assert m["ece"] == pytest.approx(0.2)  # (0.1 + 0.2 + 0.3) / 3
    assert m["positive_rate"] == 0.0


def test_classification_metrics_all_positive_single_class():
    m = classification_metrics([1, 1], [0.5, 1.0])
    assert math.isnan(m["roc_auc"])
    assert m["brier"] == pytest.approx(0.125)  # (0.25 + 0) / 2
    assert m["log_loss"] == pytest.approx(-math.log(0.5) / 2, rel=1e-9)


def test_classification_metrics_clips_probabilities_for_log_loss():
    # p = 0 for a positive costs -ln(1e-15); the clipped 1e-15 for the negative costs ~0
    m = classification_metrics([1, 0], [0.0, 0.0])
    assert m["log_loss"] == pytest.approx(-math.log(1e-15) / 2)
    assert math.isfinite(m["log_loss"])


def test_classification_metrics_matches_sklearn():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=300)
    y = (rng.uniform(size=300) < p).astype(int)
    m = classification_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)


def test_classification_metrics_rejects_non_binary():
    with pytest.raises(ValueError, match="binary"):
        classification_metrics([0, 2], [0.1, 0.2])


# --- normalized_gini ----------------------------------------------------------------------------


def test_normalized_gini_hand_computed():
    # order by pred desc: y = 0, 1, 2, 0 -> cumulative shares 0, 1/3, 1, 1 (sum 7/3)
    # gini = (7/3 - 5/2) / 4 = -1/24; perfect y = 2, 1, 0, 0 -> 2/3, 1, 1, 1 (sum 11/3)
    # gini = (11/3 - 5/2) / 4 = 7/24 -> normalised -1/7
    assert normalized_gini([1, 0, 2, 0], [0.3, 0.1, 0.2, 0.4]) == pytest.approx(-1 / 7)


def test_normalized_gini_perfect_order_is_one_and_reversed_is_minus_one():
    y = [0, 0, 1, 3]
    assert normalized_gini(y, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    # reversed: cumulative shares 0, 0, 1/4, 1 -> (5/4 - 5/2) / 4 over (15/4 - 5/2) / 4 = -1
    assert normalized_gini(y, [0.4, 0.3, 0.2, 0.1]) == pytest.approx(-1.0)


def test_normalized_gini_ties_keep_original_order():
    # all tied -> original order y = 0, 1, 0, 1: shares 0, .5, .5, 1 (sum 2) -> (2 - 2.5) / 4
    # perfect 1, 1, 0, 0: .5, 1, 1, 1 (sum 3.5) -> (3.5 - 2.5) / 4 -> normalised -0.5
    assert normalized_gini([0, 1, 0, 1], [0.5] * 4) == pytest.approx(-0.5)
    assert normalized_gini([1, 0, 1, 0], [0.5] * 4) == pytest.approx(0.5)


def test_normalized_gini_all_zero_or_constant_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(normalized_gini([0, 0, 0], [0.1, 0.2, 0.3]))
        assert math.isnan(normalized_gini([2, 2, 2], [0.1, 0.2, 0.3]))


# --- decile_mape --------------------------------------------------------------------------------


def test_decile_mape_hand_computed():
    # ten rows, one per decile (pred already descending); deciles with actual 0 are skipped:
    # |10-8|/8=.25, |9-9|/9=0, skip, |7-1|/1=6, |6-2|/2=2, |5-4|/4=.25, |4-5|/5=.2, |3-6|/6=.5,
    # skip, |1-1|/1=0 -> 9.2 / 8 = 1.15
    pred = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    y = [8, 9, 0, 1, 2, 4, 5, 6, 0, 1]
    assert decile_mape(y, pred) == pytest.approx(1.15)
    # shuffling rows does not change the deciles
    order = np.random.default_rng(1).permutation(10)
    assert decile_mape(np.array(y)[order], np.array(pred)[order]) == pytest.approx(1.15)


def test_decile_mape_groups_rows_with_array_split():
    # 12 rows -> deciles of 2, 2, 1, ..., 1 rows by pred descending
    # decile 1: pred 12 + 11 = 23 vs actual 10 + 10 = 20 -> 0.15; decile 2: 19 vs 20 -> 0.05
    # deciles 3..10: pred 8..1 vs actual 8..1 -> 0 -> mean 0.2 / 10 = 0.02
    pred = np.arange(12, 0, -1, dtype=float)
    y = np.array([10, 10, 10, 10, 8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    assert decile_mape(y, pred) == pytest.approx(0.02)


def test_decile_mape_fewer_rows_than_deciles():
    # 3 rows: deciles of one row each, the rest empty (skipped):
    # (pred 3, y 1) -> 2; (2, 2) -> 0; (1, 3) -> 2/3 -> mean 8/9
    assert decile_mape([1, 2, 3], [3, 2, 1]) == pytest.approx(8 / 9)


def test_decile_mape_all_zero_is_nan():
    assert math.isnan(decile_mape([0, 0, 0, 0], [1, 2, 3, 4]))


# --- regression_metrics -------------------------------------------------------------------------


def test_regression_metrics_hand_computed():
    y = [0.0, 1.0, 2.0, 5.0]
    pred = [1.0, 1.0, 3.0, 3.0]
    m = regression_metrics(y, pred)
    assert tuple(m) == REGRESSION_KEYS
    assert m["n"] == 4
    assert m["mean_actual"] == 2.0 and m["mean_prediction"] == 2.0
    assert m["mae"] == pytest.approx(1.0)  # (1 + 0 + 1 + 2) / 4
    assert m["rmse"] == pytest.approx(math.sqrt(1.5))  # sqrt((1 + 0 + 1 + 4) / 4)
    # ranks y 1..4 vs pred 1.5, 1.5, 3.5, 3.5: centred dot 4 / sqrt(5 * 4)
    assert m["spearman"] == pytest.approx(4 / math.sqrt(20))
    # pred desc (stable): y = 2, 5, 0, 1 -> shares .25, .875, .875, 1 (sum 3) -> 0.5 / 4;
    # perfect 5, 2, 1, 0 -> .625, .875, 1, 1 (sum 3.5) -> 1.0 / 4 -> 0.5
    assert m["normalized_gini"] == pytest.approx(0.5)
    # deciles (one row each): |3-2|/2 = .5, |3-5|/5 = .4, actual 0 skipped, |1-1|/1 = 0 -> 0.3
    assert m["decile_mape"] == pytest.approx(0.3)
    assert m["total_bias"] == pytest.approx(0.0)  # (8 - 8) / 8


def test_regression_metrics_interval_coverage_and_width():
    y = [0.0, 1.0, 2.0, 5.0]
    pred = [1.0, 1.0, 3.0, 3.0]
    lower = [0.0, 0.0, 2.0, 4.0]
    upper = [2.0, 2.0, 2.0, 4.5]
    m = regression_metrics(y, pred, lower=lower, upper=upper)
    assert tuple(m) == (*REGRESSION_KEYS, "coverage_p10_p90", "mean_interval_width")
    # 0 in [0, 2], 1 in [0, 2], 2 in [2, 2] (bounds inclusive), 5 not in [4, 4.5]
    assert m["coverage_p10_p90"] == pytest.approx(0.75)
    assert m["mean_interval_width"] == pytest.approx(1.125)  # (2 + 2 + 0 + 0.5) / 4


def test_regression_metrics_total_bias_sign():
    # (6 - 4) / 4 = 0.5 over-prediction
    assert regression_metrics([1, 3], [2, 4])["total_bias"] == pytest.approx(0.5)


def test_regression_metrics_all_zero_target_is_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    for key in ("spearman", "normalized_gini", "decile_mape", "total_bias"):
        assert math.isnan(m[key]), key
    assert m["mae"] == pytest.approx(2.0)


def test_regression_metrics_requires_both_bounds():
    with pytest.raises(ValueError, match="both"):
        regression_metrics([1.0, 2.0], [1.0, 2.0], lower=[0.0, 0.0])


# --- metrics_by_group ---------------------------------------------------------------------------


def test_metrics_by_group_slices_and_skips_small_groups():
    groups = np.array(["b", "a", "b", "a", "c"])
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    pred = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    result = metrics_by_group(groups, regression_metrics, y, pred, min_rows=2)
    assert list(result) == ["a", "b"]  # "c" has one row
    assert result["a"]["mae"] == pytest.approx(2.0)  # (1 + 3) / 2
    assert result["b"]["mae"] == pytest.approx(1.0)  # (0 + 2) / 2
    assert result["a"]["n"] == 2


def test_metrics_by_group_string_keys_and_pandas_inputs():
    groups = pd.Series([1, 2, 1, 2])
    y = pd.Series([0, 1, 1, 1], index=[10, 11, 12, 13])
    prob = pd.Series([0.2, 0.9, 0.6, 0.7], index=[10, 11, 12, 13])
    result = metrics_by_group(groups, classification_metrics, y, prob)
    assert set(result) == {"1", "2"}
    assert result["1"]["roc_auc"] == 1.0  # 0.6 (y=1) above 0.2 (y=0)
    assert math.isnan(result["2"]["roc_auc"])  # one class
    assert result["2"]["mean_prediction"] == pytest.approx(0.8)


def test_metrics_by_group_rejects_length_mismatch():
    with pytest.raises(ValueError, match="rows"):
        metrics_by_group(["a", "b"], regression_metrics, [1.0, 2.0, 3.0], [1.0, 2.0])
