"""Evaluation metrics for the lifecycle models: classifiers (churn, next stage) and CLV.

Every function takes plain arrays and returns plain floats, so the same numbers feed the run
report, MLflow and the tests. A metric that is undefined on the data (AUC with one class, Gini
of an all-zero target) is ``nan``, never an exception or a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn import metrics as skm

ArrayLike = npt.ArrayLike

LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` before the log loss."""

CLASSIFICATION_KEYS: tuple[str, ...] = (
    "n",
    "positive_rate",
    "mean_prediction",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_top10",
    "capture_top10",
)
REGRESSION_KEYS: tuple[str, ...] = (
    "n",
    "mean_actual",
    "mean_prediction",
    "mae",
    "rmse",
    "spearman",
    "normalized_gini",
    "decile_mape",
    "total_bias",
)
INTERVAL_KEYS: tuple[str, ...] = ("coverage_p10_p90", "mean_interval_width")


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a 1-d float array."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    return arr


def _pair(y_true: ArrayLike, other: ArrayLike, other_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return two 1-d float arrays of equal length."""
    y = _as_1d(y_true, "y_true")
    x = _as_1d(other, other_name)
    if len(y) != len(x):
        raise ValueError(f"y_true has {len(y)} rows but {other_name} has {len(x)}")
    return y, x


def _descending_order(score: np.ndarray) -> np.ndarray:
    """Row order by score, highest first; ties keep their original order."""
    return np.argsort(-score, kind="stable")


def expected_calibration_error(y_true: ArrayLike, prob: ArrayLike, *, n_bins: int = 10) -> float:
    """Compute the expected calibration error over equal-width probability bins.

    Bin ``k`` holds the probabilities in ``[k / n_bins, (k + 1) / n_bins)``; the last bin
    also holds 1. The error is the sum over non-empty bins of
    ``(rows in bin / n) * |mean(y in bin) - mean(prob in bin)|``.

    Parameters
    ----------
    y_true
        Binary outcomes (0/1).
    prob
        Predicted probabilities of the outcome 1, in ``[0, 1]``.
    n_bins
        Number of equal-width bins on ``[0, 1]``.

    Returns
    -------
    float
        The calibration error in ``[0, 1]``; ``nan`` for empty input.

    Examples
    --------
    >>> expected_calibration_error([0, 1, 1, 1], [0.25, 0.25, 0.75, 0.75], n_bins=2)
    0.25
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = _pair(y_true, prob, "prob")
    if len(y) == 0:
        return math.nan
    if np.any((p < 0) | (p > 1)):
        raise ValueError("prob must lie in [0, 1]")
    bins = np.minimum(np.floor(p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    filled = counts > 0
    gaps = np.abs(sum_y[filled] - sum_p[filled]) / counts[filled]
    return float(np.sum(counts[filled] / len(y) * gaps))


def lift_and_capture(
    y_true: ArrayLike, score: ArrayLike, *, top: float = 0.10
) -> tuple[float, float]:
    """Lift and capture rate of the top ``top`` share of rows ranked by score.

    The top is the first ``ceil(n * top)`` rows after a stable sort by descending score, so
    tied scores keep their original order.

    Parameters
    ----------
    y_true
        Binary outcomes (0/1), or values such as revenue (then: the share of the total).
    score
        Ranking score (higher means more likely positive).
    top
        Share of rows targeted, in ``(0, 1]``.

    Returns
    -------
    tuple of float
        ``(lift, capture)``: the positive rate (mean value) in the top divided by the overall
        one, and the share of all positives (of the total value) that fall in the top. Both
        ``nan`` when there are no positives (the total is zero).

    Examples
    --------
    >>> lift_and_capture([0, 0, 1, 1], [0.1, 0.2, 0.9, 0.3], top=0.25)
    (2.0, 0.5)
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1], got {top}")
    y, s = _pair(y_true, score, "score")
    n = len(y)
    positives = float(y.sum())
    if n == 0 or positives == 0:
        return math.nan, math.nan
    # The tolerance keeps e.g. 100 * 0.07 = 7.000000000000001 from rounding up to 8.
    k = max(1, math.ceil(n * top - 1e-9))
    top_positives = float(y[_descending_order(s)[:k]].sum())
    lift = (top_positives / k) / (positives / n)
    capture = top_positives / positives
    return float(lift), float(capture)


def _is_single_class(y: np.ndarray) -> bool:
    """Whether ``y`` holds fewer than two distinct labels."""
    return len(np.unique(y)) < 2


def classification_metrics(y_true: ArrayLike, prob: ArrayLike) -> dict[str, float]:
    """Compute the standard metrics of a binary probability forecast.

    Parameters
    ----------
    y_true
        Binary outcomes (0/1).
    prob
        Predicted probabilities of the outcome 1.

    Returns
    -------
    dict of str to float
        Keys ``n``, ``positive_rate``, ``mean_prediction``, ``roc_auc``, ``pr_auc`` (average
        precision), ``log_loss``, ``brier``, ``ece``, ``lift_top10`` and ``capture_top10``.
        With a single class in ``y_true``, ``roc_auc`` and ``pr_auc`` are ``nan``.

    Examples
    --------
    >>> m = classification_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> m["roc_auc"]
    0.75
    """
    y, p = _pair(y_true, prob, "prob")
    if len(y) == 0:
        raise ValueError("classification_metrics needs at least one row")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be binary (0/1)")
    labels = y.astype(np.int64)
    single_class = _is_single_class(labels)
    lift, capture = lift_and_capture(labels, p, top=0.10)
    return {
        "n": float(len(y)),
        "positive_rate": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "roc_auc": math.nan if single_class else float(skm.roc_auc_score(labels, p)),
        "pr_auc": math.nan if single_class else float(skm.average_precision_score(labels, p)),
        "log_loss": float(
            skm.log_loss(labels, np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS), labels=[0, 1])
        ),
        "brier": float(skm.brier_score_loss(labels, p, pos_label=1)),
        "ece": expected_calibration_error(labels, p),
        "lift_top10": lift,
        "capture_top10": capture,
    }


def _gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """Unnormalised Gini of ``actual`` ordered by ``pred`` (highest first, stable)."""
    ordered = actual[_descending_order(pred)]
    n = len(ordered)
    cumulative_share = np.cumsum(ordered) / ordered.sum()
    return float((cumulative_share.sum() - (n + 1) / 2) / n)


def normalized_gini(y_true: ArrayLike, pred: ArrayLike) -> float:
    """Normalised Gini: Gini of the prediction ordering over Gini of the perfect ordering.

    The Gini sums the cumulative share of the actual total over rows sorted by descending
    prediction (ties keep their original order), minus the same sum for a random ordering,
    ``(n + 1) / 2``, divided by ``n``. 1 is the perfect ranking; a ranking that exactly
    reverses it (distinct predictions) scores -1.

    Parameters
    ----------
    y_true
        Actual values (for example realised CLV), mostly non-negative.
    pred
        Predictions used only for their order.

    Returns
    -------
    float
        The normalised Gini; ``nan`` when ``y_true`` is constant or sums to 0.

    Examples
    --------
    >>> normalized_gini([0, 0, 1, 3], [0.1, 0.2, 0.3, 0.4])
    1.0
    """
    y, p = _pair(y_true, pred, "pred")
    if len(y) == 0 or y.sum() == 0 or np.all(y == y[0]):
        return math.nan
    return _gini(y, p) / _gini(y, y)


def prediction_deciles(pred: ArrayLike, *, n_groups: int = 10) -> list[np.ndarray]:
    """Split rows into groups by descending prediction: the decile definition used here.

    Rows are sorted by descending prediction (stable, so ties keep their original order) and
    cut with :func:`numpy.array_split`; with fewer rows than groups the last groups are empty.

    Parameters
    ----------
    pred
        Predictions, one per row.
    n_groups
        Number of groups (10 for deciles).

    Returns
    -------
    list of numpy.ndarray
        Row positions of each group, the highest predictions first.

    Examples
    --------
    >>> [g.tolist() for g in prediction_deciles([0.1, 0.9, 0.5, 0.7], n_groups=2)]
    [[1, 3], [2, 0]]
    """
    return list(np.array_split(_descending_order(_as_1d(pred, "pred")), n_groups))


def decile_mape(y_true: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute percentage error of the per-decile totals.

    Rows are split into deciles with :func:`prediction_deciles` (descending prediction,
    stable, :func:`numpy.array_split`); each decile scores
    ``|sum(pred) - sum(actual)| / |sum(actual)|`` and the result is the mean over deciles whose
    actual sum is not 0.

    Parameters
    ----------
    y_true
        Actual values.
    pred
        Predicted values.

    Returns
    -------
    float
        The mean decile error; ``nan`` when every decile's actual sum is 0.

    Examples
    --------
    >>> decile_mape([1.0] * 10, [2.0] * 10)
    1.0
    """
    y, p = _pair(y_true, pred, "pred")
    errors = []
    for rows in prediction_deciles(p):
        actual = y[rows].sum()
        if actual != 0:
            errors.append(abs(p[rows].sum() - actual) / abs(actual))
    return float(np.mean(errors)) if errors else math.nan


def _spearman(y: np.ndarray, p: np.ndarray) -> float:
    """Spearman rank correlation; ``nan`` when either side is constant or too short."""
    if len(y) < 2 or np.all(y == y[0]) or np.all(p == p[0]):
        return math.nan
    return float(stats.spearmanr(y, p).statistic)


def regression_metrics(
    y_true: ArrayLike,
    pred: ArrayLike,
    *,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
) -> dict[str, float]:
    """Compute the standard metrics of a value forecast such as CLV, with an optional interval.

    Parameters
    ----------
    y_true
        Actual values.
    pred
        Point predictions.
    lower, upper
        Optional prediction interval (for example the P10 and P90 quantiles); give both or
        neither.

    Returns
    -------
    dict of str to float
        Keys ``n``, ``mean_actual``, ``mean_prediction``, ``mae``, ``rmse``, ``spearman``,
        ``normalized_gini``, ``decile_mape`` and ``total_bias``
        (``(sum(pred) - sum(actual)) / |sum(actual)|``, ``nan`` when the actual sum is 0);
        with an interval also ``coverage_p10_p90`` (share of rows with
        ``lower <= y <= upper``) and ``mean_interval_width``.

    Examples
    --------
    >>> m = regression_metrics([0.0, 2.0], [1.0, 1.0])
    >>> m["mae"], m["total_bias"]
    (1.0, 0.0)
    """
    y, p = _pair(y_true, pred, "pred")
    if len(y) == 0:
        raise ValueError("regression_metrics needs at least one row")
    if (lower is None) != (upper is None):
        raise ValueError("give both lower and upper, or neither")
    actual_total = float(y.sum())
    result = {
        "n": float(len(y)),
        "mean_actual": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "mae": float(skm.mean_absolute_error(y, p)),
        "rmse": float(skm.root_mean_squared_error(y, p)),
        "spearman": _spearman(y, p),
        "normalized_gini": normalized_gini(y, p),
        "decile_mape": decile_mape(y, p),
        "total_bias": (
            (float(p.sum()) - actual_total) / abs(actual_total) if actual_total != 0 else math.nan
        ),
    }
    if lower is not None and upper is not None:
        _, lo = _pair(y, lower, "lower")
        _, hi = _pair(y, upper, "upper")
        result["coverage_p10_p90"] = float(np.mean((lo <= y) & (y <= hi)))
        result["mean_interval_width"] = float(np.mean(hi - lo))
    return result


def _take(values: Any, mask: np.ndarray) -> Any:
    """Rows of an array, Series or DataFrame where ``mask`` is true."""
    if hasattr(values, "iloc"):
        return values.iloc[mask]
    return np.asarray(values)[mask]


def metrics_by_group(
    groups: ArrayLike,
    fn: Callable[..., dict[str, float]],
    *arrays: ArrayLike,
    min_rows: int = 1,
) -> dict[str, dict[str, float]]:
    """Apply a metric function to each group's rows.

    Parameters
    ----------
    groups
        One group label per row (for example the lifecycle stage at the cutoff).
    fn
        Metric function called as ``fn(*slices)``, such as :func:`classification_metrics`.
    *arrays
        Arrays (or pandas objects) with one entry per row, sliced per group and passed
        positionally to ``fn``.
    min_rows
        Groups with fewer rows are skipped.

    Returns
    -------
    dict of str to dict
        ``{str(label): fn(...)}``, keys sorted; rows are grouped by ``str(label)``.

    Examples
    --------
    >>> metrics_by_group(["a", "b", "a"], regression_metrics, [1.0, 2.0, 3.0], [1.0, 2.0, 2.0])[
    ...     "a"
    ... ]["mae"]
    0.5
    """
    labels = np.asarray(groups, dtype=object)
    if labels.ndim != 1:
        raise ValueError(f"groups must be 1-d, got shape {labels.shape}")
    for i, values in enumerate(arrays):
        rows = np.shape(values)[0] if np.ndim(values) else 0
        if rows != len(labels):
            raise ValueError(f"array {i} has {rows} rows but groups has {len(labels)}")
    keys = np.array([str(label) for label in labels], dtype=object)
    result: dict[str, dict[str, float]] = {}
    for key in sorted(set(keys)):
        mask = keys == key
        if int(mask.sum()) >= min_rows:
            result[key] = fn(*(_take(values, mask) for values in arrays))
    return result


__all__ = [
    "CLASSIFICATION_KEYS",
    "REGRESSION_KEYS",
    "classification_metrics",
    "decile_mape",
    "expected_calibration_error",
    "lift_and_capture",
    "metrics_by_group",
    "normalized_gini",
    "prediction_deciles",
    "regression_metrics",
]
