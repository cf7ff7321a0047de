"""CLV as a predictive distribution: repeat purchases and revenue over the horizon, per customer.

:class:`ClvDistribution` is the hybrid CLV model. Three boosters start from the BTYD prior
(:mod:`lifecycle.models.hybrid`) and learn its corrections from the features:

- the expected revenue ``m`` (Tweedie, from log BTYD expected purchases x Gamma-Gamma spend),
- the expected number of purchase days ``mu`` (Poisson, from log BTYD expected purchases),
- the probability of any purchase ``pi`` (binary, from logit BTYD P(a purchase)).

The distribution of the purchase days ``N`` keeps the BTYD model's own shape, corrected by the
trees: ``P(N = 0) = 1 - pi``, and for ``k >= 1`` the BTYD probabilities of ``k`` are tilted
exponentially (``p_k exp(theta k)``, renormalised) so that the mean of ``N`` is ``mu``. Revenue
is the sum of ``N`` purchase days' values, each Gamma with one shape ``kappa`` (fitted by
maximum likelihood on the validation cutoff) and the customer's mean ``m / mu``, so its mean is
exactly ``m``; it has an atom at 0 of mass ``1 - pi`` and is never negative.

The reported quantiles are calibrated on the validation cutoff (Kuleshov, Fenner & Ermon 2018,
"Accurate uncertainties for deep learning using calibrated regression"): the randomised PIT
values of the validation customers (Czado, Gneiting & Held 2009, for distributions with
atoms) give, within each decile of predicted revenue, the levels whose quantiles cover 10, 50
and 90 % of the customers there. The P10-P90 interval therefore aims at 80 % of customers per
decile, and never goes below zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special

from lifecycle.models import btyd
from lifecycle.models.btyd import BtydParams
from lifecycle.models.hybrid import BTYD_COLUMNS, BtydPrior, Start, history
from lifecycle.models.lgbm import (
    FloatArray,
    _LgbmEstimator,
    _thread_params,
    matrix,
    tweedie_params,
)
from lifecycle.models.tasks import spec

LEVELS = ("p10", "median", "p90")
_MIN_BIN_ROWS = 200
_CHUNK = 4096
_KMAX_CAP = 600


_SUPPORT = (30, 60, 120, 240, _KMAX_CAP)
"""Lengths of the purchase-day tables: each row takes the first that holds four times its
positive mean plus 20 (rows of one length are computed together)."""


def _positive_mean(mu: FloatArray, pi: FloatArray) -> FloatArray:
    """``E[N | N > 0] = E[N] / P(N > 0)`` (1 where a purchase is impossible)."""
    return np.where(pi > 0, mu / np.maximum(pi, 1e-12), 1.0)


def support(mu: FloatArray, pi: FloatArray) -> FloatArray:
    """Return the table length for each row: the first of :data:`_SUPPORT` that is enough."""
    needed = np.ceil(4.0 * _positive_mean(mu, pi)) + 20.0
    ladder = np.asarray(_SUPPORT, dtype=np.float64)
    index = np.minimum(np.searchsorted(ladder, needed), len(ladder) - 1)
    return ladder[index].astype(np.int64)


def tilt(pmf: FloatArray, mean: FloatArray) -> FloatArray:
    """Exponentially tilt the positive part of count distributions to the given means.

    Parameters
    ----------
    pmf
        ``n x (K + 1)`` probabilities of ``0 .. K`` (the last column the tail mass at ``K``).
    mean
        The wanted mean of each row's positive part (``E[N | N > 0]``, at least 1).

    Returns
    -------
    numpy.ndarray
        ``n x (K + 1)`` probabilities of the positive part (column 0 is 0), each row summing
        to 1 with the wanted mean (or as close as the support ``1 .. K`` allows).

    Examples
    --------
    >>> p = np.array([[0.5, 0.3, 0.15, 0.05]])
    >>> q = tilt(p, np.array([2.0]))
    >>> round(float(q[0] @ np.arange(4)), 6), round(float(q[0].sum()), 6)
    (2.0, 1.0)
    """
    k = np.arange(pmf.shape[1], dtype=np.float64)
    positive = pmf[:, 1:].copy()
    total = positive.sum(axis=1, keepdims=True)
    # a row without positive mass (a customer the BTYD model is sure is gone) takes a geometric
    # shape; the tilt then moves it to the wanted mean
    geometric = 0.5 ** k[1:]
    positive = np.where(total > 1e-12, positive / np.where(total > 0, total, 1.0), geometric)
    with np.errstate(divide="ignore"):
        logp = np.log(positive)
    target = np.clip(mean, 1.0, k[-1])[:, None]
    lo = np.full((len(pmf), 1), -50.0)
    hi = np.full((len(pmf), 1), 50.0)
    for _ in range(46):  # theta to 1.5e-12 of its bracket
        theta = (lo + hi) / 2
        w = logp + theta * k[1:]
        w = np.exp(w - w.max(axis=1, keepdims=True))
        m = (w * k[1:]).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
        below = m < target
        lo = np.where(below, theta, lo)
        hi = np.where(below, hi, theta)
    w = logp + (lo + hi) / 2 * k[1:]
    w = np.exp(w - w.max(axis=1, keepdims=True))
    out = np.zeros_like(pmf)
    out[:, 1:] = w / w.sum(axis=1, keepdims=True)
    return out


def compound_cdf(
    pmf: FloatArray, mean_per_day: FloatArray, shape: float, z: FloatArray
) -> FloatArray:
    """P(R <= z) where R is the sum of N Gamma(shape, mean ``mean_per_day``) values.

    Parameters
    ----------
    pmf
        ``n x (K + 1)`` distribution of ``N`` (the tail column taken as ``K``).
    mean_per_day
        ``n`` means of one purchase day's value.
    shape
        The Gamma shape of one purchase day's value.
    z
        ``n`` or ``n x m`` values (broadcast against the rows).
    """
    k = np.arange(1, pmf.shape[1], dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    squeeze = zz.ndim == 1
    zz = zz[:, None] if squeeze else zz
    scale = np.maximum(mean_per_day, 1e-12)[:, None, None] / shape
    x = np.maximum(zz, 0.0)[:, :, None] / scale
    cdf = pmf[:, None, 0] + (pmf[:, None, 1:] * special.gammainc(k * shape, x)).sum(axis=2)
    cdf = np.where(zz < 0, 0.0, cdf)
    return cdf[:, 0] if squeeze else cdf


def compound_quantile(
    pmf: FloatArray, mean_per_day: FloatArray, shape: float, level: FloatArray
) -> FloatArray:
    """Return quantiles of :func:`compound_cdf` at ``level`` (0 inside the atom at zero).

    ``level`` holds one level per row (``n``) or several (``n x m``, solved together); the
    answer has its shape.
    """
    level = np.asarray(level, dtype=np.float64)
    many = level.ndim == 2
    levels = level if many else level[:, None]
    k_max = pmf.shape[1] - 1
    top = np.maximum(mean_per_day, 1e-12) * (k_max + 10.0 * np.sqrt(k_max / shape + 1.0) + 10.0)
    hi = np.repeat(top[:, None], levels.shape[1], axis=1)
    lo = np.zeros_like(hi)
    for _ in range(50):  # the bracket shrinks to 1e-15 of its start
        mid = (lo + hi) / 2
        below = compound_cdf(pmf, mean_per_day, shape, mid) < levels
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    out = np.where(levels <= pmf[:, :1], 0.0, hi)
    return out if many else out[:, 0]


def count_quantile(pmf: FloatArray, level: FloatArray) -> FloatArray:
    """Return the smallest ``k`` with ``P(N <= k) >= level``, per row."""
    cdf = np.cumsum(pmf, axis=1)
    return (cdf < np.asarray(level)[:, None] - 1e-12).sum(axis=1).astype(np.float64)


def randomized_pit(cdf_below: FloatArray, cdf_at: FloatArray, seed: int) -> FloatArray:
    """Randomised PIT values ``F(y-) + U (F(y) - F(y-))`` (uniform under a calibrated model)."""
    u = np.random.default_rng(seed).random(len(cdf_at))
    return cdf_below + u * (cdf_at - cdf_below)


def btyd_count_table(
    params: BtydParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    horizon_days: float,
    k_max: int,
) -> FloatArray:
    """BTYD probabilities of ``0 .. k_max`` purchase days (the last column the tail)."""
    return np.asarray(btyd.count_pmf_table(params, x, t_x, T, horizon_days, k_max))


class ClvDistribution(_LgbmEstimator):
    """Revenue and purchase days over the horizon as a distribution per customer (hybrid).

    Parameters
    ----------
    feature_names
        Feature columns (they must include the BTYD inputs of :mod:`lifecycle.models.hybrid`).
    horizon_days
        The horizon of the predictions.
    params
        LightGBM structure parameters of the boosters (tuned on the revenue booster);
        ``tweedie_variance_power`` (default 1.5) may be set.
    coverage
        Share of customers the P10-P90 interval aims to cover (0.8).
    seed, threads, num_boost_round, early_stopping_rounds
        As for :class:`lifecycle.models.lgbm.LifecycleClassifier`.

    Attributes
    ----------
    booster_, count_booster_, any_booster_
        Revenue, purchase-day count and any-purchase boosters (``booster_`` is the one
        explanations and tuning use).
    shape_
        Gamma shape of one purchase day's value.
    levels_
        Calibrated levels per decile of predicted revenue: ``{"clv"|"transactions":
        (edges, n_bins x 3 levels)}``.
    """

    task = "clv"

    def __init__(
        self,
        feature_names: Sequence[str],
        *,
        horizon_days: float,
        params: Mapping[str, Any] | None = None,
        coverage: float = 0.8,
        seed: int = 0,
        threads: int = 1,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 50,
    ) -> None:
        self.feature_names = list(feature_names)
        self.btyd_prior = BtydPrior(self.feature_names, horizon_days=horizon_days)
        self.prior = self.btyd_prior
        self.margin = "log_value"
        self.count_start_: Start | None = None
        self.any_start_: Start | None = None
        self.horizon_days = float(horizon_days)
        self.params = dict(params or {})
        self.coverage = coverage
        self.seed = seed
        self.threads = threads
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds

    def lgb_params(self) -> dict[str, Any]:
        """Return the full LightGBM parameters of the revenue (Tweedie) booster."""
        return tweedie_params(self.params, seed=self.seed, threads=self.threads)

    def _params_for(self, objective: str) -> dict[str, Any]:
        params = {k: v for k, v in self.lgb_params().items() if k != "tweedie_variance_power"}
        metric = "binary_logloss" if objective == "binary" else objective
        return {**params, "objective": objective, "metric": metric}

    def fit(
        self,
        train: pd.DataFrame,
        y_train: npt.ArrayLike,
        valid: pd.DataFrame,
        y_valid: npt.ArrayLike,
        *,
        counts_train: npt.ArrayLike,
        counts_valid: npt.ArrayLike,
        btyd_fits: Mapping[pd.Timestamp, BtydParams],
    ) -> Self:
        """Fit the three boosters from the BTYD margins, then the spend shape and the levels.

        Parameters
        ----------
        train, valid
            Training rows and the validation cutoff's rows.
        y_train, y_valid
            Net revenue in the horizon (negative values count as 0 for the fit).
        counts_train, counts_valid
            Purchase days in the horizon.
        btyd_fits
            The BTYD model fitted at each cutoff of the rows.
        """
        yt = np.maximum(np.asarray(y_train, dtype=np.float64), 0.0)
        yv_raw = np.asarray(y_valid, dtype=np.float64)
        yv = np.maximum(yv_raw, 0.0)
        ct = np.asarray(counts_train, dtype=np.float64)
        cv = np.asarray(counts_valid, dtype=np.float64)
        self.btyd_prior.set_fits(btyd_fits, train)
        common: dict[str, Any] = {
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
        }
        rows = (train, valid, btyd_fits)
        self.booster_, self.start_ = self._fit_hybrid(
            self.lgb_params(), "log_value", train, yt, valid, yv, btyd_fits, **common
        )
        self.count_booster_, self.count_start_ = self._fit_hybrid(
            self._params_for("poisson"), "log_purchases", train, ct, valid, cv, btyd_fits, **common
        )
        bought_t, bought_v = (ct > 0).astype(np.float64), (cv > 0).astype(np.float64)
        self.any_booster_, self.any_start_ = self._fit_hybrid(
            self._params_for("binary"),
            "p_purchase",
            train,
            bought_t,
            valid,
            bought_v,
            btyd_fits,
            **common,
        )
        del rows
        xv = matrix(valid, self.feature_names)
        parts = self._parts(xv, btyd_fits=btyd_fits, frame=valid)
        self.shape_ = _fit_shape(yv_raw, cv, parts["clv"], parts["expected_transactions"])
        self.levels_ = self._fit_levels(xv, parts, yv_raw, cv)
        return self

    # ------------------------------------------------------------------ parts and tables

    def _parts(
        self,
        x: FloatArray,
        threads: int | None = None,
        *,
        btyd_fits: Mapping[pd.Timestamp, BtydParams] | None = None,
        frame: pd.DataFrame | None = None,
    ) -> dict[str, FloatArray]:
        """Mean revenue, mean purchase days and P(any purchase) for a feature matrix.

        With ``btyd_fits`` and ``frame`` (validation rows) each row uses its own cutoff's BTYD
        model, as in training; else the kept one.
        """
        prior = self.btyd_prior
        starts = [s for s in (self.start_, self.count_start_, self.any_start_) if s is not None]
        if len(starts) != 3:
            raise RuntimeError("this ClvDistribution is not fitted yet")
        if btyd_fits is not None and frame is not None:
            design, margins = self._training_design(frame, btyd_fits, starts)
        else:
            outputs = prior.outputs(x)
            inputs = x[:, prior.positions]
            design = np.hstack([x, outputs[:, : len(BTYD_COLUMNS)]])
            margins = [s.margin(prior, inputs, outputs, prior.fitted()) for s in starts]
        extra = _thread_params(threads)

        def raw(booster: Any) -> FloatArray:
            return np.asarray(
                booster.predict(
                    design, raw_score=True, num_iteration=booster.best_iteration or None, **extra
                ),
                dtype=np.float64,
            )

        value = np.exp(raw(self.booster_) + margins[0])
        mu = np.exp(raw(self.count_booster_) + margins[1])
        pi = 1.0 / (1.0 + np.exp(-(raw(self.any_booster_) + margins[2])))
        pi = np.minimum(pi, mu)  # P(N > 0) <= E[N]
        # ... and a buyer's mean purchase days given a purchase stays near the BTYD model's: where
        # the two boosters disagree (tiny P(N > 0), sizeable E[N]) the mean given a purchase
        # would run to hundreds of days; it is capped at 3x BTYD's plus 5 (10 without one)
        n = len(self.feature_names)
        btyd_mean = design[:, n + 1] / np.maximum(1.0 - design[:, n + 2], 1e-12)
        cap = np.where(np.isfinite(btyd_mean), 3.0 * np.maximum(btyd_mean, 1.0) + 5.0, 10.0)
        pi = np.maximum(pi, np.minimum(mu / cap, mu))
        return {"clv": value, "expected_transactions": mu, "p_purchase": pi}

    def count_table(
        self, x: FloatArray, parts: Mapping[str, FloatArray], k_max: int | None = None
    ) -> FloatArray:
        """Return the corrected distribution of purchase days, ``n x (K + 1)``.

        The last column holds the tail. The BTYD shape (for a customer without a purchase,
        the shape of a customer who has just bought), tilted to the trees' mean and with the
        trees' P(no purchase). ``k_max`` None: large enough for every row (see
        :func:`support`).
        """
        prior = self.btyd_prior
        mu, pi = parts["expected_transactions"], parts["p_purchase"]
        inputs = x[:, prior.positions]
        bx, bt, bT, _, _ = history(*(inputs[:, j] for j in range(4)))
        positive_mean = _positive_mean(mu, pi)
        if k_max is None:
            k_max = int(support(mu, pi).max(initial=_SUPPORT[0]))
        base = btyd_count_table(prior.fitted(), bx, bt, bT, self.horizon_days, k_max)
        shape = tilt(base, positive_mean)
        table = shape * pi[:, None]
        table[:, 0] = 1.0 - pi
        return table

    def predict_matrix(self, x: FloatArray, threads: int | None = None) -> dict[str, FloatArray]:
        """Every output of the CLV model for every row of a float64 matrix (no eligibility)."""
        self._check_fitted()
        out: dict[str, list[FloatArray]] = {}
        for start in range(0, max(len(x), 1), _CHUNK):
            rows = x[start : start + _CHUNK]
            if not len(rows):
                break
            for name, values in self._predict_chunk(rows, threads).items():
                out.setdefault(name, []).append(values)
        names = spec("clv").outputs
        return {n: np.concatenate(out[n]) if n in out else np.empty(0) for n in names}

    def _predict_chunk(self, x: FloatArray, threads: int | None) -> dict[str, FloatArray]:
        parts = self._parts(x, threads)
        mean_day = parts["clv"] / np.maximum(parts["expected_transactions"], 1e-12)
        value_levels = self._levels("clv", parts["clv"])
        count_levels = self._levels("transactions", parts["clv"])
        out = {
            "clv": parts["clv"],
            "expected_transactions": parts["expected_transactions"],
            "p_no_purchase": 1.0 - parts["p_purchase"],
        }
        for level in LEVELS:
            out[f"clv_{level}"] = np.empty(len(x))
            out[f"transactions_{level}"] = np.empty(len(x))
        # each row's support depends on its own prediction only, so a customer gets the same
        # quantiles alone or in any batch
        rungs = support(parts["expected_transactions"], parts["p_purchase"])
        for k_max in np.unique(rungs):
            rows = rungs == k_max
            own = {name: values[rows] for name, values in parts.items()}
            table = self.count_table(x[rows], own, int(k_max))
            values = compound_quantile(table, mean_day[rows], self.shape_, value_levels[rows])
            for j, level in enumerate(LEVELS):
                out[f"clv_{level}"][rows] = values[:, j]
                out[f"transactions_{level}"][rows] = count_quantile(table, count_levels[rows, j])
        return out

    def distribution(self, features: pd.DataFrame) -> dict[str, Any]:
        """Return the predictive distribution of each row, for proper scoring rules.

        Returns
        -------
        dict
            ``table`` (purchase-day probabilities), ``mean_per_day`` and ``shape`` (the
            revenue's compound Gamma), and the point outputs of :meth:`predict_matrix`.
        """
        x = matrix(features, self.feature_names)
        parts = self._parts(x)
        table = self.count_table(x, parts)
        return {
            "table": table,
            "mean_per_day": parts["clv"] / np.maximum(parts["expected_transactions"], 1e-12),
            "shape": self.shape_,
            **parts,
        }

    def coverage_inputs(
        self, features: pd.DataFrame, revenue: npt.ArrayLike, *, seed: int = 0
    ) -> dict[str, FloatArray]:
        """Return what an honest read of the revenue interval needs, per row.

        ``p10``, ``p90`` and ``clv`` (the served values), ``implied`` (``F(p90) - F(p10-)``:
        the raw coverage the model itself expects, above 0.8 where the atom at 0 holds the
        lower tail) and ``pit`` (the randomised PIT value of the observed revenue, uniform for
        a calibrated model).
        """
        x = matrix(features, self.feature_names)
        y = np.asarray(revenue, dtype=np.float64)
        parts = self._parts(x)
        table = self.count_table(x, parts)
        mean_day = parts["clv"] / np.maximum(parts["expected_transactions"], 1e-12)
        served = self.predict_matrix(x)
        lo, hi = served["clv_p10"], served["clv_p90"]
        upper = compound_cdf(table, mean_day, self.shape_, hi)
        below_lo = np.where(lo > 0, compound_cdf(table, mean_day, self.shape_, lo), 0.0)
        at = compound_cdf(table, mean_day, self.shape_, np.maximum(y, 0.0))
        at = np.where(y < 0, 0.0, at)
        below = np.where(y > 0, at, 0.0)
        return {
            "p10": lo,
            "p90": hi,
            "clv": served["clv"],
            "implied": upper - below_lo,
            "pit": randomized_pit(below, at, seed),
        }

    # ------------------------------------------------------------------ calibration

    def _fit_levels(
        self,
        x: FloatArray,
        parts: Mapping[str, FloatArray],
        revenue: FloatArray,
        counts: FloatArray,
    ) -> dict[str, tuple[FloatArray, FloatArray]]:
        table = self.count_table(x, parts)
        mean_day = parts["clv"] / np.maximum(parts["expected_transactions"], 1e-12)
        positive = revenue > 0
        at = np.where(
            positive, compound_cdf(table, mean_day, self.shape_, np.maximum(revenue, 0.0)), 0.0
        )
        at = np.where(revenue == 0, table[:, 0], at)
        below = np.where(positive, at, 0.0)
        pit_value = randomized_pit(below, at, self.seed)
        k = np.clip(counts.astype(int), 0, table.shape[1] - 1)
        cdf = np.cumsum(table, axis=1)
        rows = np.arange(len(table))
        count_at = cdf[rows, k]
        count_below = np.where(k > 0, cdf[rows, np.maximum(k - 1, 0)], 0.0)
        pit_count = randomized_pit(count_below, count_at, self.seed + 1)
        alpha = (1.0 - self.coverage) / 2.0
        wanted = np.array([alpha, 0.5, 1.0 - alpha])
        bins = max(1, min(10, len(revenue) // _MIN_BIN_ROWS))
        edges = (
            np.quantile(parts["clv"], np.linspace(0, 1, bins + 1)[1:-1])
            if bins > 1
            else np.empty(0)
        )
        which = np.searchsorted(edges, parts["clv"], side="right")
        levels: dict[str, tuple[FloatArray, FloatArray]] = {}
        for name, pit in (("clv", pit_value), ("transactions", pit_count)):
            table_levels = np.empty((bins, 3))
            for b in range(bins):
                chosen = pit[which == b]
                table_levels[b] = np.quantile(chosen if len(chosen) else pit, wanted)
            levels[name] = (edges, table_levels)
        return levels

    def _levels(self, name: str, value: FloatArray) -> FloatArray:
        edges, table = self.levels_[name]
        return table[np.searchsorted(edges, value, side="right")]

    # ------------------------------------------------------------------ frame API

    def predict_clv(self, features: pd.DataFrame) -> FloatArray:
        """Return the expected revenue over the horizon for every row."""
        self._check_fitted()
        return self._parts(matrix(features, self.feature_names))["clv"]

    def predict_interval(self, features: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Calibrated P10 and P90 of revenue for every row (never below 0)."""
        out = self.predict_matrix(matrix(features, self.feature_names))
        return out["clv_p10"], out["clv_p90"]

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Every CLV output for every row."""
        return self._output(features, self.predict_matrix(matrix(features, self.feature_names)))


def _fit_shape(
    revenue: FloatArray, counts: FloatArray, mean: FloatArray, days: FloatArray
) -> float:
    """Maximum-likelihood Gamma shape of one purchase day's value, from the validation rows.

    A customer with ``n`` purchase days and revenue ``r > 0`` contributes the density of
    ``r`` under Gamma(``n kappa``, mean ``n c``) with ``c`` the predicted mean per day.
    """
    use = (counts >= 1) & (revenue > 0) & (days > 0) & np.isfinite(mean)
    if use.sum() < 20:
        return 1.0
    n, r = counts[use], revenue[use]
    c = mean[use] / days[use]

    def loss(log_kappa: float) -> float:
        kappa = float(np.exp(log_kappa))
        a = n * kappa
        scale = c / kappa
        return float(
            -np.sum(-special.gammaln(a) - a * np.log(scale) + (a - 1) * np.log(r) - r / scale)
        )

    best = optimize.minimize_scalar(loss, bounds=(-6.0, 6.0), method="bounded")
    return float(np.exp(best.x))
