"""The BTYD prior of the hybrid learners: a BTYD model the boosting starts from.

A hybrid estimator (:class:`lifecycle.models.lgbm.LifecycleClassifier` or
:class:`lifecycle.models.distribution.ClvDistribution` with a :class:`BtydPrior`) works in
three steps for every row of the feature matrix:

1. The BTYD model (BG/NBD or Pareto/NBD, the one with the higher likelihood, plus Gamma-Gamma
   for spend; :mod:`lifecycle.models.btyd`) reads the customer's purchase history from four
   feature columns (:data:`BTYD_INPUTS`) and gives P(alive), the expected purchases and
   P(no purchase) over the horizon, and the expected spend per purchase day
   (:data:`BTYD_COLUMNS`).
2. Those outputs are appended to the features, and one of them, on the booster's scale, is the
   row's starting margin (LightGBM's ``init_score``): the trees learn corrections to it.
3. Explanations fold the contributions of the appended columns, and the margin's deviation
   from a reference customer, back onto the four inputs (exact Shapley values of the BTYD
   functions), so a driver always names a feature a person can read.

Because the BTYD model carries a time scale, the margin keeps moving where the trees stop
(recency far beyond anything in training), which trees alone cannot do. At training, rows of
each cutoff use the BTYD parameters fitted on the events before that cutoff
(:func:`fit_btyd_by_cutoff`); the fitted estimator keeps the parameters of the latest cutoff,
which serving and batch scoring both use, so they give the same numbers for the same features.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.models import btyd
from lifecycle.models.btyd import BtydParams

FloatArray = npt.NDArray[np.float64]

BTYD_INPUTS = (
    "repeat_purchase_days",
    "days_since_first_purchase",
    "days_since_last_purchase",
    "revenue_total",
)
"""Feature columns the BTYD model reads: frequency, T, T - recency, and spend."""

BTYD_COLUMNS = (
    "btyd_p_alive",
    "btyd_expected_purchases",
    "btyd_p_no_purchase",
    "btyd_expected_spend",
)
"""Columns the prior appends to the features (NaN for a customer without a purchase)."""

BTYD_CHURN_DIRECTION = {
    "btyd_p_alive": -1,
    "btyd_expected_purchases": -1,
    "btyd_p_no_purchase": 1,
}
"""Monotone direction of the appended columns in the churn model (more alive, less churn)."""

Margin: TypeAlias = Literal["p_no_purchase", "p_purchase", "log_purchases", "log_value"]
"""Which BTYD output the boosting starts from, on the booster's scale (logit or log)."""

_FLOOR = 1e-6
_TINY = 1e-300
_MAX_TRAINING_ROWS = 200_000  # per cutoff: the fit's cost grows with rows, its precision does not


def _logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, _FLOOR, 1.0 - _FLOOR)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)


def history(
    rep: FloatArray, first: FloatArray, last: FloatArray, revenue: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Turn the four input columns into BTYD inputs ``x, t_x, T, monetary`` (days) and buyers.

    A customer without a purchase (no first purchase) gets zeros and ``False``.
    """
    bought = np.isfinite(first) & np.isfinite(last)
    T = np.where(bought, np.maximum(np.nan_to_num(first), 0.0), 0.0)
    x = np.where(bought, np.maximum(np.nan_to_num(rep), 0.0), 0.0)
    # purchases hours apart on one purchase day are one transaction: no repeat, no recency
    span = np.where(bought & (x > 0), np.nan_to_num(first) - np.nan_to_num(last), 0.0)
    t_x = np.clip(span, 0.0, T)
    monetary = np.where(bought, np.maximum(np.nan_to_num(revenue), 0.0) / (x + 1.0), 0.0)
    return x, t_x, T, monetary, bought


def btyd_outputs(params: BtydParams, inputs: FloatArray, horizon_days: float) -> FloatArray:
    """Return the BTYD outputs of rows of the four :data:`BTYD_INPUTS` (NaN for non-buyers).

    The first columns are :data:`BTYD_COLUMNS` (what the booster sees); the last is
    log P(a purchase in the horizon), which the margins read so that they keep moving where
    the probabilities round to 0 or 1.

    Parameters
    ----------
    params
        A fitted BTYD model.
    inputs
        ``n x 4`` matrix of :data:`BTYD_INPUTS`, in that order.
    horizon_days
        The horizon of expected purchases and P(no purchase).
    """
    x, t_x, T, monetary, bought = history(*(inputs[:, j] for j in range(4)))
    out = np.full((len(inputs), len(BTYD_COLUMNS) + 1), np.nan)
    if bought.any():
        xb, tb, Tb, mb = x[bought], t_x[bought], T[bought], monetary[bought]
        summary = btyd.horizon_summary(params, xb, tb, Tb, horizon_days)
        out[bought, 0] = summary["p_alive"]
        out[bought, 1] = summary["expected_purchases"]
        out[bought, 2] = summary["p_no_purchase"]
        out[bought, 4] = summary["log_p_purchase"]
        if params.p is not None:  # without revenue there is no Gamma-Gamma spend
            out[bought, 3] = btyd.expected_spend(params, xb + 1.0, mb)
        else:
            out[bought, 3] = 0.0
    return out


def margin_of(
    kind: Margin, outputs: FloatArray, base: float, scale: tuple[float, float] = (0.0, 1.0)
) -> FloatArray:
    """Return each row's starting margin from its BTYD outputs; ``base`` for non-buyers.

    ``scale`` ``(a, b)`` maps a buyer's BTYD margin ``z`` to ``a + b z`` (see
    :func:`fit_offset`).
    """
    value = _raw_margin(kind, outputs)
    return np.where(np.isfinite(outputs[:, 0]), scale[0] + scale[1] * value, base)


def fit_offset(kind: Margin, outputs: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Fit ``(a, b)`` so that ``a + b z`` (``z`` the BTYD margin) best predicts the buyers' labels.

    A BTYD model can be far from right on a log (a wrong dropout process, spend unlike
    Gamma-Gamma): starting the trees from it as it is would make them spend their rounds
    undoing it. A one-variable GLM on the training rows (logistic for a probability, Poisson
    for a count or an amount, both on the margin's own scale) recalibrates it first; ``b`` is
    kept in ``[0.05, 2]`` so the margin keeps BTYD's direction and its time scale.
    """
    from sklearn.linear_model import LogisticRegression, PoissonRegressor

    buyers = np.isfinite(outputs[:, 0]) & np.isfinite(y)
    z = _raw_margin(kind, outputs[buyers])
    target = y[buyers]
    if len(z) < 50 or np.ptp(z) <= 0:
        return 0.0, 1.0
    zz = z.reshape(-1, 1)
    if kind in ("p_no_purchase", "p_purchase"):
        if len(np.unique(target)) < 2:
            return 0.0, 1.0
        model = LogisticRegression(C=1e6).fit(zz, target)
        a, b = float(model.intercept_[0]), float(model.coef_[0, 0])
    else:
        y_pos = np.maximum(target, 0.0)
        if y_pos.sum() <= 0:
            return 0.0, 1.0
        model = PoissonRegressor(alpha=0.0, max_iter=300).fit(zz, y_pos)
        a, b = float(model.intercept_), float(model.coef_[0])
    if not (np.isfinite(a) and np.isfinite(b)):
        return 0.0, 1.0
    clipped = float(np.clip(b, 0.05, 2.0))
    if clipped != b:  # refit the intercept alone for the clipped slope
        a = _intercept(kind, z, target, clipped)
    return a, clipped


def _intercept(kind: Margin, z: FloatArray, y: FloatArray, b: float) -> float:
    from scipy import optimize

    def loss(a: float) -> float:
        eta = a + b * z
        if kind in ("p_no_purchase", "p_purchase"):
            return float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        return float(np.sum(np.exp(eta) - np.maximum(y, 0.0) * eta))

    return float(optimize.minimize_scalar(loss, bounds=(-30.0, 30.0), method="bounded").x)


def _raw_margin(kind: Margin, outputs: FloatArray) -> FloatArray:
    # log-odds from log P(purchase), so that they keep growing for a customer away for years
    log_buy = np.minimum(outputs[:, 4], math.log1p(-1e-12))
    log_none = np.log(-np.expm1(log_buy))
    if kind == "p_no_purchase":
        value = log_none - log_buy
    elif kind == "p_purchase":
        value = log_buy - log_none
    elif kind == "log_purchases":
        value = np.log(np.maximum(outputs[:, 1], _TINY))
    else:
        value = np.log(np.maximum(outputs[:, 1] * outputs[:, 3], _TINY))
    return np.asarray(value, dtype=np.float64)


def base_margin(kind: Margin, y: FloatArray) -> float:
    """Return the margin of customers without a purchase: the link of their mean label."""
    if len(y) == 0:
        return 0.0
    mean = float(np.mean(np.maximum(y, 0.0)))
    if kind in ("p_no_purchase", "p_purchase"):
        return float(_logit(np.array([mean]))[0])
    return math.log(max(mean, _FLOOR))


@dataclass(frozen=True)
class Start:
    """Where one hybrid booster starts: the BTYD margin, how it is used, and its offset.

    ``mode`` ``full``: the boosting starts from the (recalibrated) BTYD margin everywhere, and
    the trees learn corrections to it. ``edge``: the trees learn the target on their own
    (with the BTYD columns as features), and the BTYD margin only adds its change beyond the
    training range (``z(x) - z(clip(x))``, see :meth:`BtydPrior.clip`): where trees are flat,
    the BTYD model still carries the time scale. The estimator fits both and keeps the one
    with the lower validation loss.
    """

    kind: Margin
    mode: Literal["full", "edge"]
    offset: tuple[float, float]
    base: float

    def margin(
        self, prior: BtydPrior, inputs: FloatArray, outputs: FloatArray, params: BtydParams
    ) -> FloatArray:
        """Return the starting margin of rows given their four BTYD inputs and BTYD outputs."""
        if self.mode == "full":
            return margin_of(self.kind, outputs, self.base, self.offset)
        margin = np.zeros(len(inputs))
        clipped = prior.clip(inputs)
        # only rows beyond the training range move (most rows, and most requests, have none)
        beyond = np.isfinite(outputs[:, 0]) & np.any(
            np.nan_to_num(clipped) != np.nan_to_num(inputs), axis=1
        )
        if beyond.any():
            inside = btyd_outputs(params, clipped[beyond], prior.horizon_days)
            delta = _raw_margin(self.kind, outputs[beyond]) - _raw_margin(self.kind, inside)
            margin[beyond] = self.offset[1] * np.nan_to_num(delta)
        return margin


class BtydPrior:
    """The BTYD model a hybrid estimator starts from, and how its columns are explained.

    Parameters
    ----------
    feature_names
        The estimator's feature columns; they must include :data:`BTYD_INPUTS`.
    horizon_days
        The horizon of the task (expected purchases and P(no purchase) over it).

    Attributes
    ----------
    params
        The BTYD parameters applied to any row (fitted at the latest training cutoff);
        :meth:`set_fits` sets them.
    reference
        The four inputs of a reference buyer (training medians): explanations measure the
        BTYD outputs' effect from there.
    """

    def __init__(self, feature_names: Sequence[str], *, horizon_days: float) -> None:
        names = list(feature_names)
        missing = [c for c in BTYD_INPUTS if c not in names]
        if missing:
            raise ValueError(f"a hybrid model needs the feature(s) {', '.join(missing)}")
        self.positions = [names.index(c) for c in BTYD_INPUTS]
        self.horizon_days = float(horizon_days)
        self.params: BtydParams | None = None
        self.reference = np.zeros(len(BTYD_INPUTS))
        self.limits = np.full(3, np.inf)

    def set_fits(self, fits: Mapping[pd.Timestamp, BtydParams], train: pd.DataFrame) -> None:
        """Keep the latest cutoff's parameters and the reference buyer of ``train``."""
        if not fits:
            raise ValueError("a hybrid model needs at least one fitted BTYD model")
        self.params = fits[max(fits)]
        buyers = train.loc[np.isfinite(train["days_since_first_purchase"]), list(BTYD_INPUTS)]
        if len(buyers):
            self.reference = np.nan_to_num(buyers.median().to_numpy(dtype=np.float64))
            self.limits = np.nan_to_num(buyers.iloc[:, :3].max().to_numpy(dtype=np.float64))

    def clip(self, inputs: FloatArray) -> FloatArray:
        """Return the nearest history within the training range.

        Repeat purchase days and the days since the last purchase are capped at the training
        buyers' largest; the time from the first to the last purchase and the spend per
        purchase day are kept (the tenure follows).
        """
        out = inputs.copy()
        rep = np.nan_to_num(inputs[:, 0])
        far = (rep > self.limits[0]) | (np.nan_to_num(inputs[:, 2]) > self.limits[2])
        if not far.any():  # the common case: every row is within the training range
            return out
        span = inputs[far, 1] - inputs[far, 2]
        capped_rep = np.minimum(rep[far], self.limits[0])
        recency = np.minimum(inputs[far, 2], self.limits[2])
        out[far, 0] = capped_rep
        out[far, 1] = span + recency
        out[far, 2] = recency
        out[far, 3] = inputs[far, 3] * (capped_rep + 1.0) / (rep[far] + 1.0)
        return out

    def fitted(self) -> BtydParams:
        """Return the kept BTYD parameters.

        Raises
        ------
        RuntimeError
            Before :meth:`set_fits`.
        """
        if self.params is None:
            raise RuntimeError("the BTYD prior has no fitted parameters")
        return self.params

    def outputs(self, x: FloatArray, params: BtydParams | None = None) -> FloatArray:
        """Return the BTYD outputs of the rows of a feature matrix (the kept params by default).

        The score, the explanation and the CLV quantiles of one request read the same rows
        several times: the last answer for the kept parameters is remembered (by the rows'
        bytes), so they are computed once.
        """
        chosen = params or self.params
        if chosen is None:
            raise RuntimeError("the BTYD prior has no fitted parameters")
        inputs = np.ascontiguousarray(x[:, self.positions])
        if chosen is not self.params:
            return btyd_outputs(chosen, inputs, self.horizon_days)
        key = inputs.tobytes()
        last = getattr(self, "_last", None)
        if last is not None and last[0] == key:
            return last[1].copy()
        out = btyd_outputs(chosen, inputs, self.horizon_days)
        if len(inputs) <= 64:  # requests, not batches
            self._last = (key, out.copy())
        return out

    def outputs_by_cutoff(
        self,
        frame: pd.DataFrame,
        x: FloatArray,
        fits: Mapping[pd.Timestamp, BtydParams],
        starts: Sequence[Start] = (),
    ) -> tuple[FloatArray, list[FloatArray]]:
        """:meth:`outputs` (and each start's margin) with each row's own cutoff's parameters.

        Rows of a cutoff too early for a BTYD model are treated as customers without a
        purchase (NaN outputs, the non-buyers' margin).
        """
        out = np.full((len(frame), len(BTYD_COLUMNS) + 1), np.nan)
        margins = [
            np.full(len(frame), start.base if start.mode == "full" else 0.0) for start in starts
        ]
        cutoffs = pd.to_datetime(frame["cutoff"], utc=True)
        for cutoff in cutoffs.unique():
            rows = (cutoffs == cutoff).to_numpy()
            if cutoff not in fits:
                continue
            out[rows] = self.outputs(x[rows], fits[cutoff])
            for margin, start in zip(margins, starts, strict=True):
                inputs = x[rows][:, self.positions]
                margin[rows] = start.margin(self, inputs, out[rows], fits[cutoff])
        return out, margins

    def fold(
        self,
        contributions: FloatArray,
        x: FloatArray,
        n_features: int,
        start: Start | None,
    ) -> FloatArray:
        """Fold the appended columns' SHAP values and the margin onto the BTYD inputs.

        Parameters
        ----------
        contributions
            The booster's ``pred_contrib`` on ``[features | BTYD columns]``: ``n x (p + 4 + 1)``.
        x
            The ``n x p`` feature matrix.
        n_features
            ``p``.
        start
            Where the booster started (None: from zero).

        Returns
        -------
        numpy.ndarray
            ``n x (p + 1)``: a value per feature, then the base value; each row adds up to the
            model's raw score (booster plus margin). For a buyer, each appended column's value
            is shared among the four inputs in proportion to the size of their exact Shapley
            values in that BTYD output (from the reference buyer), and the margin adds exactly
            its Shapley values; for a customer without a purchase, both go to
            ``days_since_last_purchase`` (its sentence says there is no purchase yet).
        """
        n = len(x)
        k = len(BTYD_COLUMNS)
        out = np.zeros((n, n_features + 1))
        out[:, :n_features] = contributions[:, :n_features]
        appended = np.nan_to_num(contributions[:, n_features : n_features + k])
        out[:, n_features] = contributions[:, n_features + k]
        inputs = x[:, self.positions]
        _, _, _, _, bought = history(*(inputs[:, j] for j in range(4)))
        phi, at_reference = self._shapley(inputs, start)
        size = np.abs(phi[:, :, :k])  # (n, 4 inputs, k outputs)
        total = size.sum(axis=1, keepdims=True)
        share = np.where(total > 1e-12, size / np.where(total > 0, total, 1.0), 0.25)
        folded = np.einsum("nik,nk->ni", share, appended)
        if start is not None:
            folded += phi[:, :, k]
            out[:, n_features] += at_reference
        recency = self.positions[2]
        for j, column in enumerate(self.positions):
            out[bought, column] += folded[bought, j]
        lost = ~bought
        out[lost, recency] += appended[lost].sum(axis=1)
        if start is not None:
            lost_margin = start.base if start.mode == "full" else 0.0
            out[lost, recency] += lost_margin - at_reference
        return out

    def _shapley(self, inputs: FloatArray, start: Start | None) -> tuple[FloatArray, float]:
        """Exact Shapley values of each BTYD output (and the margin) over the four inputs.

        Returns ``phi`` of shape ``(n, 4, 5)`` (the 4 columns, then the margin) and the
        margin of the reference buyer.
        """
        n, players = len(inputs), len(BTYD_INPUTS)
        ref = np.broadcast_to(self.reference, inputs.shape)
        coalitions = list(itertools.product((False, True), repeat=players))
        stacked = np.concatenate(
            [np.where(np.array(c)[None, :], inputs, ref) for c in coalitions], axis=0
        )
        outs = btyd_outputs(self.fitted(), stacked, self.horizon_days)
        if start is not None:
            margin = start.margin(self, stacked, outs, self.fitted())
        else:
            margin = np.zeros(len(stacked))
        values = np.concatenate(
            [np.nan_to_num(outs[:, : len(BTYD_COLUMNS)]), margin[:, None]], axis=1
        )
        values = values.reshape(len(coalitions), n, -1)
        index = {c: i for i, c in enumerate(coalitions)}
        phi = np.zeros((n, players, values.shape[2]))
        for c in coalitions:
            size = sum(c)
            for j in range(players):
                if c[j]:
                    continue
                with_j = tuple(True if i == j else v for i, v in enumerate(c))
                weight = (
                    math.factorial(size)
                    * math.factorial(players - size - 1)
                    / math.factorial(players)
                )
                phi[:, j, :] += weight * (values[index[with_j]] - values[index[c]])
        reference_margin = float(values[index[(False,) * players], 0, -1]) if n else 0.0
        return phi, reference_margin


def fit_btyd_by_cutoff(
    features: pd.DataFrame, cutoffs: Iterable[pd.Timestamp], *, seed: int = 0
) -> dict[pd.Timestamp, BtydParams]:
    """Fit the BTYD model at each cutoff on that cutoff's buyers (their features' history).

    The history comes from the feature rows (:data:`BTYD_INPUTS`), which use only events
    before the cutoff, so no fit sees anything at or after its cutoff.

    A cutoff too early for a fit (too few buyers, no repeat purchase yet) has none: its rows
    are treated as customers without a purchase by the hybrid.

    Raises
    ------
    ValueError
        From :func:`lifecycle.models.btyd.fit_btyd` when the latest cutoff cannot be fitted.
    """
    fits: dict[pd.Timestamp, BtydParams] = {}
    stamps = pd.to_datetime(features["cutoff"], utc=True)
    ordered = sorted(set(cutoffs))
    for cutoff in ordered:
        rows = features.loc[(stamps == cutoff).to_numpy(), list(BTYD_INPUTS)]
        rows = rows.loc[np.isfinite(rows["days_since_first_purchase"])]
        if len(rows) > _MAX_TRAINING_ROWS:
            rows = rows.sample(n=_MAX_TRAINING_ROWS, random_state=seed)
        columns = (rows[c].to_numpy(dtype=np.float64) for c in BTYD_INPUTS)
        x, t_x, T, monetary, _ = history(*columns)
        try:
            fits[cutoff] = btyd.fit_btyd(x, t_x, T, monetary)
        except ValueError as exc:
            if cutoff == ordered[-1]:
                raise ValueError(f"BTYD at {cutoff.date()}: {exc}") from exc
    return fits
