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


# ---------------------------------------------------------------- proper scoring rules
#
# A predictive distribution is scored on the observed value by a proper scoring rule (Gneiting &
# Raftery 2007, "Strictly proper scoring rules, prediction, and estimation", JASA 102): the log
# score and the continuous ranked probability score (CRPS), both lower-is-better here. Count
# distributions are tables ``n x (K + 1)`` of P(N = 0 .. K - 1) and, in the last column, the tail
# P(N >= K), which every function here takes as mass at ``K`` (as
# ``lifecycle.models.distribution.compound_cdf`` does).

COUNT_LOG_FLOOR = 1e-12
"""Probabilities below this count as this in :func:`count_log_score` (a finite penalty for 0)."""


def _table(table: ArrayLike) -> np.ndarray:
    """Return a count table as a 2-d float array with at least one column."""
    arr = np.asarray(table, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"a count table must be n x (K + 1), got shape {arr.shape}")
    return arr


def count_pmf_at(table: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Return each row's probability of its observed count (the tail column for ``y >= K``).

    Parameters
    ----------
    table
        ``n x (K + 1)`` count probabilities, the last column ``P(N >= K)``.
    y
        Observed counts; a negative or non-integer value has probability 0.

    Returns
    -------
    numpy.ndarray
        ``n`` probabilities, for :func:`count_log_score`.

    Examples
    --------
    >>> count_pmf_at([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]], [1, 7]).tolist()
    [0.3, 0.2]
    """
    t = _table(table)
    y_ = _as_1d(y, "y")
    if len(y_) != len(t):
        raise ValueError(f"y has {len(y_)} rows but the table has {len(t)}")
    whole = (y_ >= 0) & (y_ == np.round(y_))
    column = np.clip(np.nan_to_num(y_), 0, t.shape[1] - 1).astype(int)
    return np.where(whole, t[np.arange(len(t)), column], 0.0)


def count_log_score(pmf_at_y: ArrayLike, *, floor: float = COUNT_LOG_FLOOR) -> float:
    """Mean negative log-likelihood of the observed counts (the log score; lower is better).

    Parameters
    ----------
    pmf_at_y
        Each row's predicted probability of its observed count (:func:`count_pmf_at`).
    floor
        Probabilities below ``floor`` (an outcome the model called impossible) count as
        ``floor``, so one such row costs ``-log(floor)`` (27.6 nats by default), not infinity.

    Returns
    -------
    float
        ``mean(-log(max(p, floor)))`` in nats; ``nan`` without rows.

    Examples
    --------
    >>> round(count_log_score([0.5, 0.25]), 4)  # (log 2 + log 4) / 2
    1.0397
    >>> round(count_log_score([0.0], floor=1e-6), 4)
    13.8155
    """
    p = _as_1d(pmf_at_y, "pmf_at_y")
    if len(p) == 0:
        return math.nan
    return float(-np.log(np.clip(p, floor, 1.0)).mean())


def crps_count(table: ArrayLike, y: ArrayLike) -> np.ndarray:
    """CRPS of count distributions, exactly: the integral of ``(F(z) - 1{z >= y})^2`` over z.

    ``F`` is a step function, constant on each ``[k, k + 1)``, so the integral is a finite sum
    over ``k < K`` plus ``max(y - K, 0)`` beyond the table (where ``F = 1``) and ``max(-y, 0)``
    below 0 (where ``F = 0``). For a whole ``y`` it is the usual ``sum_k (F(k) - 1{y <= k})^2``;
    any real ``y`` (a point forecast scored as a count, a negative value) is handled exactly.

    Parameters
    ----------
    table
        ``n x (K + 1)`` count probabilities, the last column ``P(N >= K)`` taken as mass at K.
    y
        Observed values, one per row.

    Returns
    -------
    numpy.ndarray
        One CRPS per row (same unit as ``y``; lower is better). A point mass at ``m`` scores
        ``|y - m|``.

    Examples
    --------
    >>> crps_count([[0.0, 0.0, 1.0]], [5.0])  # all mass at 2: |5 - 2|
    array([3.])
    >>> crps_count([[0.5, 0.5]], [0.0])  # F(0) = 0.5 on [0, 1): 0.5 ** 2
    array([0.25])
    """
    t = _table(table)
    y_ = _as_1d(y, "y")
    if len(y_) != len(t):
        raise ValueError(f"y has {len(y_)} rows but the table has {len(t)}")
    k_max = t.shape[1] - 1
    cdf = np.minimum(np.cumsum(t[:, :k_max], axis=1), 1.0)  # F(k), k < K
    below = np.clip(y_[:, None] - np.arange(k_max), 0.0, 1.0)  # share of [k, k + 1) below y
    inside = (below * cdf**2 + (1.0 - below) * (1.0 - cdf) ** 2).sum(axis=1)
    return inside + np.maximum(-y_, 0.0) + np.maximum(y_ - k_max, 0.0)


def _gamma_abs_pairs(k_max: int, shape: float) -> np.ndarray:
    """``E|G_j - G_k|`` for independent Gamma(``j shape``, 1) and Gamma(``k shape``, 1), j, k <= K.

    ``G_j + G_k`` is Gamma(``a + b``) and independent of ``B = G_j / (G_j + G_k)``, which is
    Beta(``a``, ``b``), so ``E|G_j - G_k| = (a + b) E|2B - 1|`` with
    ``E|2B - 1| = 2 (2 a / (a + b) P'(B > 1/2) - P(B > 1/2)) - (2 a / (a + b) - 1)`` and ``P'``
    the Beta(``a + 1``, ``b``) probability.
    """
    from scipy import special

    a = np.arange(k_max + 1, dtype=float) * shape
    aj, ak = np.meshgrid(a, a, indexing="ij")
    out = np.zeros_like(aj)
    both = (aj > 0) & (ak > 0)
    x, z = aj[both], ak[both]
    share = x / (x + z)
    above = 1.0 - special.betainc(x, z, 0.5)
    above_1 = 1.0 - special.betainc(x + 1.0, z, 0.5)
    out[both] = (x + z) * (2.0 * (2.0 * share * above_1 - above) - (2.0 * share - 1.0))
    out[(aj == 0) & (ak > 0)] = ak[(aj == 0) & (ak > 0)]
    out[(aj > 0) & (ak == 0)] = aj[(aj > 0) & (ak == 0)]
    return out


def crps_compound(
    table: ArrayLike,
    mean_per_day: ArrayLike,
    shape: float,
    y: ArrayLike,
    *,
    chunk: int = 4096,
) -> np.ndarray:
    """CRPS of compound Gamma revenue: ``N`` purchase days, each Gamma(``shape``) with a mean.

    The distribution of :func:`lifecycle.models.distribution.compound_cdf`: given ``N = k``
    (the tail column taken as ``K``) revenue is Gamma(``k shape``, scale ``theta``) with
    ``theta = mean_per_day / shape``, and 0 when ``k = 0``. The CRPS equals
    ``E|R - y| - E|R - R'| / 2`` (Gneiting & Raftery 2007, eq. 21), and both terms are closed
    forms here: ``E|G - y| = y (2 P(a, y / theta) - 1) - a theta (2 P(a + 1, y / theta) - 1)``
    for ``G`` ~ Gamma(``a``, ``theta``) (``P`` the regularised lower incomplete gamma; the CRPS
    of a Gamma, Scheuerer & Möller 2015), and ``E|R - R'| = theta p' D p`` with ``D`` the table
    of ``E|G_j - G_k|`` at unit scale, which depends on ``shape`` only. So the result is the
    integral of ``(F(z) - 1{z >= y})^2`` up to rounding (the tests check it against numerical
    integration of ``compound_cdf``), with no grid to tune; a negative ``y`` (refunds) is
    scored as the distance to a distribution that lives on ``[0, inf)``.

    Parameters
    ----------
    table
        ``n x (K + 1)`` purchase-day probabilities, the last column ``P(N >= K)``.
    mean_per_day
        ``n`` means of one purchase day's value (floored at 1e-12, as ``compound_cdf`` does).
    shape
        The Gamma shape of one purchase day's value (> 0).
    y
        Observed revenue, one per row.
    chunk
        Rows handled at once (bounds the memory of the ``n x (K + 1)`` temporaries).

    Returns
    -------
    numpy.ndarray
        One CRPS per row, in the unit of ``y``.

    Examples
    --------
    >>> crps_compound([[1.0, 0.0]], [10.0], 2.0, [3.0])  # all mass at 0: |3 - 0|
    array([3.])
    >>> # one purchase day of Exponential(mean 1): CRPS at 0 is E|R| - E|R - R'| / 2 = 1 - 1/2
    >>> crps_compound([[0.0, 1.0]], [1.0], 1.0, [0.0]).round(6)
    array([0.5])
    """
    from scipy import special

    t = _table(table)
    y_ = _as_1d(y, "y")
    mean = _as_1d(mean_per_day, "mean_per_day")
    if not (len(y_) == len(t) == len(mean)):
        raise ValueError("table, mean_per_day and y need the same number of rows")
    if not (math.isfinite(shape) and shape > 0):
        raise ValueError(f"shape must be positive, got {shape}")
    k_max = t.shape[1] - 1
    pairs = _gamma_abs_pairs(k_max, shape)
    a = np.arange(1, k_max + 1, dtype=float) * shape
    out = np.empty(len(t))
    for start in range(0, len(t), max(chunk, 1)):
        rows = slice(start, start + max(chunk, 1))
        p, yy = t[rows], y_[rows]
        theta = np.maximum(mean[rows], 1e-12) / shape
        x = np.maximum(yy, 0.0)[:, None] / theta[:, None]
        p_a = special.gammainc(a, x)
        p_a1 = special.gammainc(a + 1.0, x)
        to_y = p[:, 0] * np.abs(yy) + (
            p[:, 1:] * (yy[:, None] * (2.0 * p_a - 1.0) - a * theta[:, None] * (2.0 * p_a1 - 1.0))
        ).sum(axis=1)
        spread = theta * np.einsum("ij,jk,ik->i", p, pairs, p)
        out[rows] = to_y - 0.5 * spread
    return np.maximum(out, 0.0)


def pit_coverage(
    cdf_below: ArrayLike,
    cdf_at: ArrayLike,
    lo: float = 0.1,
    hi: float = 0.9,
    *,
    seed: int = 0,
) -> float:
    """Share of randomised PIT values in ``[lo, hi]``: ``hi - lo`` for a calibrated model.

    The randomised probability integral transform ``u = F(y-) + U (F(y) - F(y-))`` with ``U``
    uniform (Czado, Gneiting & Held 2009, "Predictive model assessment for count data") is
    exactly uniform when the predictive distributions are right, atoms (zero revenue, counts)
    included; so the share of ``u`` in ``[lo, hi]`` should be ``hi - lo`` overall and in any
    subgroup chosen from the predictions. Raw coverage of an interval cannot do that with an
    atom at 0: ``[0, P90]`` holds every zero.

    Parameters
    ----------
    cdf_below, cdf_at
        ``F(y-)`` and ``F(y)`` of each row's predictive distribution at its observed value.
    lo, hi
        The band of PIT values (0.1 and 0.9: a central 80 % interval).
    seed
        Seed of the uniform draws.

    Returns
    -------
    float
        The share of rows whose PIT value lies in ``[lo, hi]``; ``nan`` without rows.

    Examples
    --------
    >>> pit_coverage([0.0, 0.5, 0.95], [0.0, 0.5, 1.0])  # PIT 0, 0.5, and in [0.95, 1]
    0.3333333333333333
    """
    below, at = _pair(cdf_below, cdf_at, "cdf_at")
    if len(at) == 0:
        return math.nan
    u = below + np.random.default_rng(seed).random(len(at)) * (at - below)
    return float(np.mean((u >= lo) & (u <= hi)))


def _interval_cell(
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    implied: np.ndarray,
    pit: np.ndarray,
    by: np.ndarray,
    levels: tuple[float, float],
) -> dict[str, float]:
    """Return the interval figures of one group of rows."""
    if len(y) == 0:
        return {"n": 0.0}
    return {
        "n": float(len(y)),
        "predicted_mean": float(by.mean()),
        "raw": float(np.mean((lo <= y) & (y <= hi))),
        "implied": float(np.mean(implied)),
        "pit": float(np.mean((pit >= levels[0]) & (pit <= levels[1]))),
        "mean_width": float(np.mean(hi - lo)),
        "min_lower": float(lo.min()),
    }


def interval_report(
    y: ArrayLike,
    lo: ArrayLike,
    hi: ArrayLike,
    implied: ArrayLike,
    pit: ArrayLike,
    by: ArrayLike,
    *,
    levels: tuple[float, float] = (0.1, 0.9),
    n_groups: int = 10,
) -> dict[str, Any]:
    """How a predictive interval covers, read three ways, overall and per decile of ``by``.

    - ``raw``: the share of rows with ``lo <= y <= hi``;
    - ``implied``: the raw coverage the model itself expects, the mean of
      ``F(hi) - F(lo-)``. For a distribution with an atom (revenue 0 with probability 0.6,
      say) a P10-P90 interval ``[0, P90]`` holds the whole atom, so a calibrated model expects
      *more* than 80 % raw coverage; compare ``raw`` with ``implied``, not with 0.8;
    - ``pit``: the share of randomised PIT values (:func:`pit_coverage`) in ``levels``, which
      is ``levels[1] - levels[0]`` for a calibrated model whatever the atoms.

    Parameters
    ----------
    y
        Observed values.
    lo, hi
        The interval's bounds per row (for example the served P10 and P90).
    implied
        ``F(hi) - F(lo-)`` per row, from the model's distribution.
    pit
        The randomised PIT value of each row's observation.
    by
        The predicted value that defines the deciles (:func:`prediction_deciles`: decile 1
        holds the highest predictions).
    levels
        The PIT band (0.1, 0.9).
    n_groups
        Number of groups (10: deciles).

    Returns
    -------
    dict
        ``overall`` and ``by_decile`` (a list, highest predictions first), each with ``n``,
        ``predicted_mean``, ``raw``, ``implied``, ``pit``, ``mean_width`` and ``min_lower``,
        plus ``target`` (``levels[1] - levels[0]``).

    Examples
    --------
    >>> report = interval_report([0.0, 5.0, 20.0, 2.0], [0.0, 0.0, 1.0, 1.0],
    ...                          [10.0, 10.0, 10.0, 10.0], [0.85, 0.85, 0.8, 0.8],
    ...                          [0.3, 0.5, 0.95, 0.2], [1.0, 2.0, 3.0, 4.0], n_groups=2)
    >>> report["overall"]["raw"], report["overall"]["implied"], report["overall"]["pit"]
    (0.75, 0.825, 0.75)
    >>> [d["raw"] for d in report["by_decile"]]  # highest predictions (rows 3, 2) first
    [0.5, 1.0]
    """
    y_ = _as_1d(y, "y")
    arrays = [_pair(y_, v, name)[1] for v, name in ((lo, "lo"), (hi, "hi"), (implied, "implied"))]
    pit_ = _pair(y_, pit, "pit")[1]
    by_ = _pair(y_, by, "by")[1]
    lo_, hi_, implied_ = arrays
    cell = _interval_cell
    return {
        "target": float(levels[1] - levels[0]),
        "overall": cell(y_, lo_, hi_, implied_, pit_, by_, levels),
        "by_decile": [
            cell(y_[g], lo_[g], hi_[g], implied_[g], pit_[g], by_[g], levels)
            for g in prediction_deciles(by_, n_groups=n_groups)
        ],
    }


__all__ = [
    "CLASSIFICATION_KEYS",
    "REGRESSION_KEYS",
    "classification_metrics",
    "count_log_score",
    "count_pmf_at",
    "crps_compound",
    "crps_count",
    "decile_mape",
    "expected_calibration_error",
    "interval_report",
    "lift_and_capture",
    "metrics_by_group",
    "normalized_gini",
    "pit_coverage",
    "prediction_deciles",
    "regression_metrics",
]
