"""LightGBM estimators for the three predictions: next stage, churn risk and CLV with an interval.

Each estimator takes the feature frame of :func:`lifecycle.features.build.build_features` (one row
per
customer per cutoff), uses the feature columns it was fitted on, and answers with named columns
(:meth:`predict_frame`), so serving and batch scoring never depend on column order. Rows a task
does not apply to (a loyal customer has no next stage; a customer who never bought cannot churn)
get NaN: :func:`eligible` is the one place that says which rows those are.

Training is deterministic for a given seed and thread count (LightGBM's ``deterministic`` and
``force_row_wise``), early stopping and calibration use a *later* cutoff than the training rows,
and probabilities are calibrated (isotonic or Platt) on that later cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from lifecycle.models.btyd import BtydParams
from lifecycle.models.hybrid import (
    BTYD_CHURN_DIRECTION,
    BTYD_COLUMNS,
    BtydPrior,
    Margin,
    Start,
    base_margin,
    fit_offset,
)
from lifecycle.models.tasks import Task, eligible, spec

if TYPE_CHECKING:
    from lifecycle.models.distribution import ClvDistribution

FloatArray = npt.NDArray[np.float64]

PROBABILITY_FLOOR = 1e-6


def base_params(*, seed: int, threads: int) -> dict[str, Any]:
    """LightGBM parameters every model shares: quiet, deterministic, seeded."""
    return {
        "verbosity": -1,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "num_threads": threads,
        "feature_pre_filter": False,
    }


def tweedie_params(params: Mapping[str, Any], *, seed: int, threads: int) -> dict[str, Any]:
    """Full parameters of a revenue (Tweedie) booster: variance power 1.5 unless ``params`` say."""
    return {
        "objective": "tweedie",
        "metric": "tweedie",
        "tweedie_variance_power": 1.5,
        **params,
        **base_params(seed=seed, threads=threads),
    }


def matrix(features: pd.DataFrame, columns: Sequence[str]) -> FloatArray:
    """Return the feature columns as a float64 matrix (missing values stay NaN)."""
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise ValueError(f"features lack the column(s) {', '.join(missing)}")
    return features[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)


def train_booster(
    params: Mapping[str, Any],
    x_train: FloatArray,
    y_train: FloatArray,
    x_valid: FloatArray,
    y_valid: FloatArray,
    *,
    feature_names: Sequence[str],
    num_boost_round: int = 2000,
    early_stopping_rounds: int = 50,
    callbacks: Sequence[Callable[..., Any]] = (),
    init_scores: tuple[FloatArray, FloatArray] | None = None,
) -> lgb.Booster:
    """Train one booster with early stopping on the validation rows (named ``valid``).

    Parameters
    ----------
    params
        Full LightGBM parameters (objective, metric, structure, :func:`base_params`).
    x_train, y_train, x_valid, y_valid
        Training and validation matrices and labels.
    feature_names
        Column names, kept in the booster (SHAP and importance plots use them).
    num_boost_round, early_stopping_rounds
        Round cap, and rounds without improvement on ``valid`` before stopping.
    callbacks
        Extra callbacks, e.g. Optuna's pruning callback.
    init_scores
        Raw scores the boosting starts from on the training and validation rows (a hybrid
        model's BTYD margin); the trees then learn corrections to it.

    Returns
    -------
    lightgbm.Booster
        Trained booster; ``best_iteration`` is the round kept.
    """
    names = list(feature_names)
    init_train, init_valid = init_scores if init_scores is not None else (None, None)
    train = lgb.Dataset(
        x_train, label=y_train, feature_name=names, free_raw_data=True, init_score=init_train
    )
    valid = lgb.Dataset(
        x_valid, label=y_valid, reference=train, feature_name=names, init_score=init_valid
    )
    return lgb.train(
        dict(params),
        train,
        num_boost_round=num_boost_round,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False), *callbacks],
    )


def _monotone_vector(feature_names: Sequence[str], monotone: Mapping[str, int]) -> list[int]:
    return [int(monotone.get(name, 0)) for name in feature_names]


class _LgbmEstimator:
    """Shared fitted state and helpers: feature list, booster, contributions, importance.

    With a :class:`~lifecycle.models.hybrid.BtydPrior` (``prior``) the estimator is a hybrid:
    its booster sees the features plus the BTYD columns and starts from the BTYD margin
    (``margin``; the booster's raw output is a correction to it).
    """

    task: Task
    feature_names: list[str]
    booster_: lgb.Booster
    prior: BtydPrior | None = None
    margin: Margin | None = None
    start_: Start | None = None

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet")

    @property
    def booster_feature_names(self) -> list[str]:
        """The booster's columns: the features, then the BTYD columns of a hybrid."""
        extra = list(BTYD_COLUMNS) if self.prior is not None else []
        return [*self.feature_names, *extra]

    def _design(
        self, x: FloatArray, start: Start | None = None
    ) -> tuple[FloatArray, FloatArray | None]:
        """Return the booster's matrix and its starting margin (None: from zero) for ``x``."""
        if self.prior is None:
            return x, None
        outputs = self.prior.outputs(x)
        start = start or self.start_
        margin = None
        if start is not None:
            inputs = x[:, self.prior.positions]
            margin = start.margin(self.prior, inputs, outputs, self.prior.fitted())
        return np.hstack([x, outputs[:, : len(BTYD_COLUMNS)]]), margin

    def design_matrix(self, x: FloatArray) -> FloatArray:
        """Return the booster's own input for a feature matrix (a hybrid's BTYD columns added).

        What LightGBM's ``pred_contrib`` or shap's ``TreeExplainer`` read; the estimator's
        :meth:`contributions_matrix` folds the BTYD columns back onto the features.
        """
        return self._design(x)[0]

    def _training_design(
        self,
        frame: pd.DataFrame,
        fits: Mapping[pd.Timestamp, BtydParams] | None,
        starts: Sequence[Start] = (),
    ) -> tuple[FloatArray, list[FloatArray]]:
        """Return the booster's matrix of training rows and the margin of each start.

        Each row uses its own cutoff's BTYD model.
        """
        x = matrix(frame, self.feature_names)
        if self.prior is None:
            return x, []
        if fits is None:
            raise ValueError("a hybrid estimator is fitted with the BTYD fits of its cutoffs")
        outputs, margins = self.prior.outputs_by_cutoff(frame, x, fits, starts)
        return np.hstack([x, outputs[:, : len(BTYD_COLUMNS)]]), margins

    def _fit_hybrid(
        self,
        params: Mapping[str, Any],
        kind: Margin,
        train: pd.DataFrame,
        y_train: FloatArray,
        valid: pd.DataFrame,
        y_valid: FloatArray,
        fits: Mapping[pd.Timestamp, BtydParams],
        **common: Any,
    ) -> tuple[lgb.Booster, Start]:
        """Fit one booster from each :class:`Start` mode; keep the lower validation loss.

        ``y_train`` is the booster's own label (for ``p_purchase``: 1 for a purchase).
        """
        if self.prior is None:
            raise RuntimeError("only a hybrid estimator starts from a BTYD margin")
        lost = ~np.isfinite(train["days_since_first_purchase"].to_numpy(dtype=np.float64))
        base = base_margin(kind, y_train[lost])
        outputs, _ = self.prior.outputs_by_cutoff(train, matrix(train, self.feature_names), fits)
        offset = fit_offset(kind, outputs, y_train)
        starts = [Start(kind, mode, offset, base) for mode in ("full", "edge")]
        xt, train_margins = self._training_design(train, fits, starts)
        xv, valid_margins = self._training_design(valid, fits, starts)
        metric = str(params["metric"])
        best: tuple[float, lgb.Booster, Start] | None = None
        for start, mt, mv in zip(starts, train_margins, valid_margins, strict=True):
            booster = train_booster(
                params,
                xt,
                y_train,
                xv,
                y_valid,
                feature_names=self.booster_feature_names,
                init_scores=(mt, mv),
                **common,
            )
            loss = float(booster.best_score["valid"][metric])
            if best is None or loss < best[0]:
                best = (loss, booster, start)
        if best is None:  # pragma: no cover - two starts are always tried
            raise RuntimeError("no booster was fitted")
        return best[1], best[2]

    def contributions(self, features: pd.DataFrame) -> FloatArray:
        """Per-feature SHAP values of the booster's raw score (last column: the base value).

        LightGBM's ``pred_contrib`` is exactly Tree SHAP; the values explain the uncalibrated
        margin (log-odds for classifiers, log of the mean for CLV).
        """
        self._check_fitted()
        return self.contributions_matrix(matrix(features, self.feature_names))

    def contributions_matrix(self, x: FloatArray, threads: int | None = None) -> FloatArray:
        """:meth:`contributions` of a float64 matrix in :attr:`feature_names` order.

        ``threads`` overrides the booster's thread count (serving uses 1: OpenMP threads
        competing with other requests for two cores cost far more than they save).
        """
        design, _ = self._design(x)
        values = np.asarray(
            self.booster_.predict(
                design,
                pred_contrib=True,
                num_iteration=self.booster_.best_iteration or None,
                **_thread_params(threads),
            ),
            dtype=np.float64,
        )
        if self.prior is None:
            return values
        return self.prior.fold(values, x, len(self.feature_names), self.start_)

    def raw_score_matrix(self, x: FloatArray, threads: int | None = None) -> FloatArray:
        """Return the model's raw output (what :meth:`contributions` add up to) for a matrix.

        For a hybrid: the BTYD margin plus the booster's correction.
        """
        design, margin = self._design(x)
        return self._raw(design, margin, threads)

    def _raw(
        self, design: FloatArray, margin: FloatArray | None, threads: int | None = None
    ) -> FloatArray:
        raw = self.booster_.predict(
            design,
            raw_score=True,
            num_iteration=self.booster_.best_iteration or None,
            **_thread_params(threads),
        )
        raw = np.asarray(raw, dtype=np.float64)
        return raw if margin is None else raw + margin

    def importance(self) -> pd.Series:
        """Total gain per feature, highest first."""
        self._check_fitted()
        gain = self.booster_.feature_importance(importance_type="gain")
        names = self.booster_feature_names
        return pd.Series(gain, index=names, name="gain").sort_values(ascending=False)

    def _output(self, features: pd.DataFrame, values: Mapping[str, FloatArray]) -> pd.DataFrame:
        mask = eligible(self.task, features)
        out = pd.DataFrame(index=features.index)
        for name in spec(self.task).outputs:
            column = np.full(len(features), np.nan)
            column[mask] = values[name]
            out[name] = column
        return out


class LifecycleClassifier(_LgbmEstimator):
    """A LightGBM binary classifier with a probability calibrator fitted on a later cutoff.

    Parameters
    ----------
    task
        ``next_stage`` or ``churn``.
    feature_names
        Feature columns to use, in order.
    params
        LightGBM structure parameters (``num_leaves``, ``learning_rate``, ...); objective,
        metric and the deterministic settings are added here.
    calibration
        ``isotonic``, ``sigmoid`` (Platt scaling of the margin), ``auto`` (the one of the two
        with the lower two-fold cross-validated log loss on the calibration cutoff; sigmoid
        below 2,000 rows or 100 of either class), or ``none``.
    monotone
        Feature name -> +1 / -1 monotone constraint (for churn training passes
        :func:`lifecycle.features.definitions.churn_monotone`: the directions the features carry;
        a hybrid churn model adds :data:`~lifecycle.models.hybrid.BTYD_CHURN_DIRECTION`).
    seed, threads
        LightGBM seed and thread count (both part of reproducibility).
    num_boost_round, early_stopping_rounds
        Round cap and early-stopping patience on the validation cutoff.
    prior, margin
        A BTYD prior makes the classifier a hybrid (:mod:`lifecycle.models.hybrid`); ``margin``
        names the BTYD output the boosting starts from (None: only the appended columns).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.normal(size=400), "stage_code": 2, "n_purchases": 1})
    >>> y = (frame["x"] + rng.normal(size=400) > 0).to_numpy(float)
    >>> clf = LifecycleClassifier("churn", ["x"], params={"num_leaves": 4}, calibration="sigmoid")
    >>> clf = clf.fit(frame[:300], y[:300], frame[300:], y[300:])
    >>> list(clf.predict_frame(frame[:2]).columns)
    ['churn_risk']
    """

    def __init__(
        self,
        task: Task,
        feature_names: Sequence[str],
        *,
        params: Mapping[str, Any] | None = None,
        calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto",
        monotone: Mapping[str, int] | None = None,
        seed: int = 0,
        threads: int = 1,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 50,
        prior: BtydPrior | None = None,
        margin: Margin | None = None,
    ) -> None:
        if spec(task).kind != "classification":
            raise ValueError(f"{task} is not a classification task")
        if margin is not None and prior is None:
            raise ValueError("a BTYD margin needs a BTYD prior")
        self.prior = prior
        self.margin = margin
        self.task = task
        self.feature_names = list(feature_names)
        self.params = dict(params or {})
        self.calibration = calibration
        self.monotone = dict(monotone or {})
        self.seed = seed
        self.threads = threads
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds

    def lgb_params(self) -> dict[str, Any]:
        """Return the full LightGBM parameters this classifier trains with."""
        params = {
            "objective": "binary",
            "metric": "binary_logloss",
            **self.params,
            **base_params(seed=self.seed, threads=self.threads),
        }
        if self.monotone:
            monotone = dict(self.monotone)
            if self.prior is not None and self.task == "churn":
                monotone.update(BTYD_CHURN_DIRECTION)
            params["monotone_constraints"] = _monotone_vector(self.booster_feature_names, monotone)
            params["monotone_constraints_method"] = "intermediate"
        return params

    def fit(
        self,
        train: pd.DataFrame,
        y_train: npt.ArrayLike,
        valid: pd.DataFrame,
        y_valid: npt.ArrayLike,
        *,
        btyd_fits: Mapping[pd.Timestamp, BtydParams] | None = None,
    ) -> Self:
        """Train on ``train`` with early stopping on ``valid``, then calibrate on ``valid``.

        A hybrid needs ``btyd_fits``: the BTYD model fitted at each cutoff of the rows.
        """
        yt = np.asarray(y_train, dtype=np.float64)
        yv = np.asarray(y_valid, dtype=np.float64)
        if self.prior is not None:
            if btyd_fits is None:
                raise ValueError("a hybrid classifier is fitted with the BTYD fits of its cutoffs")
            self.prior.set_fits(btyd_fits, train)
        if self.prior is not None and self.margin is not None and btyd_fits is not None:
            self.booster_, self.start_ = self._fit_hybrid(
                self.lgb_params(),
                self.margin,
                train,
                yt,
                valid,
                yv,
                btyd_fits,
                num_boost_round=self.num_boost_round,
                early_stopping_rounds=self.early_stopping_rounds,
            )
        else:
            xt, _ = self._training_design(train, btyd_fits)
            xv0, _ = self._training_design(valid, btyd_fits)
            self.booster_ = train_booster(
                self.lgb_params(),
                xt,
                yt,
                xv0,
                yv,
                feature_names=self.booster_feature_names,
                num_boost_round=self.num_boost_round,
                early_stopping_rounds=self.early_stopping_rounds,
            )
        starts = [self.start_] if self.start_ is not None else []
        xv, margins = self._training_design(valid, btyd_fits, starts)
        margin = self._raw(xv, margins[0] if margins else None)
        self.calibration_method_ = self._choose_calibration(margin, yv)
        self.calibrator_ = _fit_calibrator(self.calibration_method_, margin, yv)
        return self

    def _choose_calibration(self, margin: FloatArray, y_valid: FloatArray) -> str:
        """Pick isotonic or sigmoid by two-fold cross-validated log loss on the validation rows.

        Isotonic needs at least 2,000 rows and 100 of each class to be considered at all.
        """
        if self.calibration != "auto":
            return self.calibration
        positives = int(y_valid.sum())
        if len(y_valid) < 2000 or min(positives, len(y_valid) - positives) < 100:
            return "sigmoid"
        half = np.random.default_rng(self.seed).random(len(y_valid)) < 0.5
        losses = {}
        for method in ("isotonic", "sigmoid"):
            loss = 0.0
            for fit_rows in (half, ~half):
                calibrator = _fit_calibrator(method, margin[fit_rows], y_valid[fit_rows])
                p = np.clip(_apply_calibrator(calibrator, margin[~fit_rows]), 1e-6, 1 - 1e-6)
                loss += float(log_loss(y_valid[~fit_rows], p, labels=[0.0, 1.0]))
            losses[method] = loss
        return min(losses, key=lambda m: (losses[m], m != "sigmoid"))

    def _margin(self, features: pd.DataFrame) -> FloatArray:
        self._check_fitted()
        return self.raw_score_matrix(matrix(features, self.feature_names))

    def predict_uncalibrated(self, features: pd.DataFrame) -> FloatArray:
        """Probabilities straight from the booster, before calibration."""
        return _sigmoid(self._margin(features))

    def predict_proba(self, features: pd.DataFrame) -> FloatArray:
        """Calibrated probabilities for every row (eligible or not)."""
        return self._calibrated(self._margin(features))

    def _calibrated(self, margin: FloatArray) -> FloatArray:
        prob = _apply_calibrator(self.calibrator_, margin)
        return np.clip(prob, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)

    def calibrate(self, raw: FloatArray) -> FloatArray:
        """Return the calibrated probability of raw outputs (what :meth:`predict_matrix` reports).

        Explanations convert SHAP values (log-odds) to points of this probability.
        """
        self._check_fitted()
        return self._calibrated(np.asarray(raw, dtype=np.float64))

    def predict_matrix(self, x: FloatArray, threads: int | None = None) -> dict[str, FloatArray]:
        """Return the task's output for every row of a float64 matrix (no eligibility mask).

        The serving fast path: no pandas, the same numbers as :meth:`predict_frame` gives
        for eligible rows.
        """
        return {spec(self.task).outputs[0]: self._calibrated(self.raw_score_matrix(x, threads))}

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probability in the task's output column; NaN for ineligible rows."""
        mask = eligible(self.task, features)
        values = self.predict_proba(features[mask]) if mask.any() else np.empty(0)
        return self._output(features, {spec(self.task).outputs[0]: values})


class ClvRegressor(_LgbmEstimator):
    """Expected revenue over the horizon (Tweedie LightGBM) with a P10-P90 interval.

    The interval comes from two quantile boosters (0.1 and 0.9) widened by conformalized
    quantile regression (Romano et al., 2019) on the validation cutoff, so that it covers
    ``coverage`` of validation customers. Net revenue below zero (refunds of earlier purchases
    exceeding new purchases) is floored at 0 for the Tweedie fit, which needs non-negative
    labels; evaluation uses the real values.

    Parameters
    ----------
    feature_names
        Feature columns to use, in order.
    params
        LightGBM structure parameters; ``tweedie_variance_power`` (default 1.5) may be set.
    coverage
        Target share of customers inside ``[clv_p10, clv_p90]`` (0.8 for P10-P90).
    seed, threads, num_boost_round, early_stopping_rounds
        As for :class:`LifecycleClassifier`.
    """

    task: Task = "clv"

    def __init__(
        self,
        feature_names: Sequence[str],
        *,
        params: Mapping[str, Any] | None = None,
        coverage: float = 0.8,
        seed: int = 0,
        threads: int = 1,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 50,
    ) -> None:
        self.feature_names = list(feature_names)
        self.params = dict(params or {})
        self.coverage = coverage
        self.seed = seed
        self.threads = threads
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds

    def lgb_params(self) -> dict[str, Any]:
        """Return the full LightGBM parameters of the expected-value (Tweedie) booster."""
        return tweedie_params(self.params, seed=self.seed, threads=self.threads)

    def _quantile_params(self, alpha: float) -> dict[str, Any]:
        params = {k: v for k, v in self.lgb_params().items() if k != "tweedie_variance_power"}
        return {**params, "objective": "quantile", "alpha": alpha, "metric": "quantile"}

    def fit(
        self,
        train: pd.DataFrame,
        y_train: npt.ArrayLike,
        valid: pd.DataFrame,
        y_valid: npt.ArrayLike,
    ) -> Self:
        """Fit the mean and both quantile boosters, then conformalize the interval on ``valid``."""
        yt = np.asarray(y_train, dtype=np.float64)
        yv = np.asarray(y_valid, dtype=np.float64)
        xt, xv = matrix(train, self.feature_names), matrix(valid, self.feature_names)
        common: dict[str, Any] = {
            "feature_names": self.feature_names,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
        }
        self.booster_ = train_booster(
            self.lgb_params(), xt, np.maximum(yt, 0.0), xv, np.maximum(yv, 0.0), **common
        )
        alpha = (1.0 - self.coverage) / 2.0
        self.lower_booster_ = train_booster(self._quantile_params(alpha), xt, yt, xv, yv, **common)
        self.upper_booster_ = train_booster(
            self._quantile_params(1.0 - alpha), xt, yt, xv, yv, **common
        )
        lo, hi = self._bracket(*self._raw_interval(xv), self._mean(xv))
        scores = np.maximum(lo - yv, yv - hi)
        n = len(scores)
        level = min(1.0, math.ceil((n + 1) * self.coverage) / n) if n else 1.0
        self.conformal_margin_ = float(np.quantile(scores, level, method="higher")) if n else 0.0
        return self

    def _raw_interval(
        self, x: FloatArray, threads: int | None = None
    ) -> tuple[FloatArray, FloatArray]:
        extra = _thread_params(threads)
        lo = self.lower_booster_.predict(
            x, num_iteration=self.lower_booster_.best_iteration, **extra
        )
        hi = self.upper_booster_.predict(
            x, num_iteration=self.upper_booster_.best_iteration, **extra
        )
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        return np.minimum(lo, hi), np.maximum(lo, hi)

    @staticmethod
    def _bracket(lo: FloatArray, hi: FloatArray, mean: FloatArray) -> tuple[FloatArray, FloatArray]:
        # The interval always holds the expected value (a heavy tail can put the mean above
        # P90); conformalizing the bracketed interval keeps the coverage honest.
        return np.minimum(lo, mean), np.maximum(hi, mean)

    def _mean(self, x: FloatArray, threads: int | None = None) -> FloatArray:
        pred = self.booster_.predict(
            x, num_iteration=self.booster_.best_iteration, **_thread_params(threads)
        )
        return np.asarray(pred, dtype=np.float64)

    def predict_clv(self, features: pd.DataFrame) -> FloatArray:
        """Return the expected revenue over the horizon for every row."""
        self._check_fitted()
        return self._mean(matrix(features, self.feature_names))

    def predict_interval(self, features: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Conformalized P10 and P90 for every row (always bracketing :meth:`predict_clv`)."""
        out = self.predict_matrix(matrix(features, self.feature_names))
        return out["clv_p10"], out["clv_p90"]

    def predict_matrix(self, x: FloatArray, threads: int | None = None) -> dict[str, FloatArray]:
        """``clv``, ``clv_p10`` and ``clv_p90`` for every row of a float64 matrix.

        Not a distribution: the other CLV outputs (median, purchase days) are NaN.
        """
        self._check_fitted()
        mean = self._mean(x, threads)
        lo, hi = self._bracket(*self._raw_interval(x, threads), mean)
        margin = self.conformal_margin_
        unknown = np.full(len(mean), np.nan)
        return {
            "clv": mean,
            "clv_p10": np.minimum(lo - margin, mean),
            "clv_p90": np.maximum(hi + margin, mean),
            **{name: unknown for name in spec("clv").outputs[3:]},
        }

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """``clv``, ``clv_p10`` and ``clv_p90`` for every row."""
        return self._output(features, self.predict_matrix(matrix(features, self.feature_names)))


LifecycleEstimator: TypeAlias = "LifecycleClassifier | ClvRegressor | ClvDistribution"
"""Any fitted task estimator (the hybrid CLV model is in :mod:`lifecycle.models.distribution`)."""


def import_shap() -> Any:
    """Import shap without the deprecation noise its colour maps make in matplotlib."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


def shap_explanation(contributions: npt.ArrayLike, features: pd.DataFrame) -> Any:
    """Wrap LightGBM Tree SHAP values as a :class:`shap.Explanation` for shap's plots.

    Parameters
    ----------
    contributions
        ``Booster.predict(X, pred_contrib=True)`` of a single-output model: ``n x (p + 1)``,
        the last column the base value.
    features
        The ``n x p`` rows the values explain (the points' colours and the waterfall's labels).

    Returns
    -------
    shap.Explanation
        ``values`` ``n x p``, ``base_values`` ``n``, ``data`` and ``feature_names``; row ``i``
        adds up to the booster's raw output (log-odds, or the log of the mean for CLV).

    Raises
    ------
    ValueError
        When the shapes do not fit.
    """
    shap = import_shap()
    values = np.asarray(contributions, dtype=float)
    expected = (len(features), features.shape[1] + 1)
    if values.ndim != 2 or values.shape != expected:
        raise ValueError(
            f"contributions must have shape (n, p + 1) = {expected} for a single-output model, "
            f"got {values.shape}"
        )
    return shap.Explanation(
        values=values[:, :-1],
        base_values=values[:, -1],
        data=features.to_numpy(),
        feature_names=[str(c) for c in features.columns],
    )


Calibrator: TypeAlias = IsotonicRegression | LogisticRegression | None


def _fit_calibrator(method: str, margin: FloatArray, y: FloatArray) -> Calibrator:
    """Fit isotonic regression on probabilities, or Platt scaling on the margin.

    With a single class there is nothing to calibrate against: the booster's own
    probabilities are kept.
    """
    if len(np.unique(y)) < 2:
        return None
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        return iso.fit(_sigmoid(margin), y)
    if method == "sigmoid":
        return LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)
    return None


def _apply_calibrator(calibrator: Calibrator, margin: FloatArray) -> FloatArray:
    # The fitted maps applied directly with numpy (what sklearn's predict computes, without
    # its per-call validation, which costs more than the model on a single row): isotonic is
    # linear interpolation between its thresholds, clipped at the ends; Platt is a logistic
    # function of the margin.
    if isinstance(calibrator, IsotonicRegression):
        return _isotonic(calibrator, margin)
    if isinstance(calibrator, LogisticRegression):
        slope, intercept = float(calibrator.coef_[0, 0]), float(calibrator.intercept_[0])
        return _sigmoid(slope * margin + intercept)
    return _sigmoid(margin)


def _isotonic(calibrator: IsotonicRegression, margin: FloatArray) -> FloatArray:
    """Isotonic calibration that keeps moving beyond the calibration rows' margins.

    Inside the range of the calibration cutoff's margins it is the fitted step function;
    beyond either end the margin's change is added on the log-odds scale to the end value,
    so a hybrid's BTYD margin still raises (or lowers) the probability where no calibration
    row was (a customer away far longer than any seen in training).
    """
    xs, ys = calibrator.X_thresholds_, calibrator.y_thresholds_
    prob = np.interp(_sigmoid(margin), xs, ys)
    if len(xs) == 0:
        return prob
    low, high = _logit(float(xs[0])), _logit(float(xs[-1]))
    beyond_high = margin > high
    beyond_low = margin < low
    if beyond_high.any():
        prob[beyond_high] = _sigmoid(_logit(float(ys[-1])) + margin[beyond_high] - high)
    if beyond_low.any():
        prob[beyond_low] = _sigmoid(_logit(float(ys[0])) + margin[beyond_low] - low)
    return prob


def _logit(p: float) -> float:
    p = min(max(p, PROBABILITY_FLOOR), 1.0 - PROBABILITY_FLOOR)
    return math.log(p / (1.0 - p))


def _thread_params(threads: int | None) -> dict[str, Any]:
    return {} if threads is None else {"num_threads": threads}


def _sigmoid(margin: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)
