"""Campaign uplift from randomised sends: the training frame and a two-model (T-learner) estimator.

A campaign targets customers, randomises each to treatment or control and exposes only the
treated ones. :func:`campaign_frame` turns recent campaigns into one row per targeted customer
per send: the features as of the send (events strictly before it, so the exposure itself is not
seen) and whether the customer bought within the outcome window. :class:`TwoModelUplift` fits,
per offer, one classifier on treated rows and one on control rows; the estimated uplift of a
customer is the difference of their two purchase probabilities. Randomisation is what makes the
difference causal: both arms look alike apart from the treatment.

That difference of two noisy models is mostly noise per customer (its highest values are the
most over-estimated), so the estimates served are calibrated on the same randomised data and
stored with the model: the offer's observed effect spread over customers in proportion to their
chance of buying anyway (a relative lift; a pooled control model gives that chance, far better
estimated than a difference of two), plus the learner's own estimates shrunk by the slope they
showed on held-out customers (:func:`calibration_slope` of a doubly robust
:func:`pseudo_outcome`). Every user of :meth:`TwoModelUplift.predict_matrix` (serving's
next-best-action, ``lifecycle plan``, the offline evaluation) gets the calibrated estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.features.build import (
    DAY_US,
    KEY_COLUMNS,
    EventSource,
    build_features,
    connect,
    feature_columns,
    register_events,
    sql_list,
)
from lifecycle.features.config import LifecycleConfig
from lifecycle.models.lgbm import base_params, matrix

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CAMPAIGN_COLUMNS: tuple[str, ...] = ("customer_id", "campaign_id", "offer", "sent_ts", "group")
"""Columns a campaign table needs (``campaigns.parquet`` of
:func:`lifecycle.features.simulate.simulate`)."""

GROUPS: tuple[str, ...] = ("treatment", "control")
"""Values of the campaign table's ``group`` column."""

FRAME_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "campaign_id",
    "cutoff",
    "offer",
    "treated",
    "purchased",
    "stage",
    "rfm_segment",
)
"""Columns of :func:`campaign_frame` before the feature columns."""

DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 50,
    # The uplift is the difference of two models fitted on small arms: L2 on the leaf values
    # keeps each one from chasing noise (on 3,000 simulated customers it cuts the spread of
    # out-of-sample uplift by about a third).
    "lambda_l2": 10.0,
}
"""Structure of each arm's classifier: small trees, enough data per leaf for noisy outcomes."""


def read_campaigns(campaigns: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Read and check a campaign table: required columns, known groups, UTC send times.

    Parameters
    ----------
    campaigns
        A frame, or the path of a Parquet file, with the columns of :data:`CAMPAIGN_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        Those columns only, ``customer_id`` as strings and ``sent_ts`` in UTC microseconds.

    Examples
    --------
    >>> table = read_campaigns(pd.DataFrame({"customer_id": ["a"], "campaign_id": ["C1"],
    ...     "offer": ["bundle"], "sent_ts": ["2024-01-01"], "group": ["control"]}))
    >>> table["sent_ts"].dtype
    datetime64[us, UTC]
    """
    frame = campaigns if isinstance(campaigns, pd.DataFrame) else pd.read_parquet(campaigns)
    missing = [c for c in CAMPAIGN_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"campaigns lack the column(s) {', '.join(missing)}")
    out = frame[list(CAMPAIGN_COLUMNS)].copy()
    unknown = sorted(set(out["group"].dropna().unique()) - set(GROUPS))
    if unknown or out["group"].isna().any():
        found = ", ".join(map(repr, unknown)) or "missing values"
        raise ValueError(f"campaign group must be {' or '.join(GROUPS)}; found {found}")
    out["customer_id"] = out["customer_id"].astype("str")
    out["sent_ts"] = pd.to_datetime(out["sent_ts"], utc=True).astype("datetime64[us, UTC]")
    if out["sent_ts"].isna().any():
        raise ValueError("campaigns have rows without a sent_ts")
    return out


def complete_sends(
    sent_ts: pd.Series, *, last_event: pd.Timestamp, window_days: int, max_campaigns: int
) -> list[pd.Timestamp]:
    """Return the latest send times whose outcome window ends by the last event, oldest first.

    Examples
    --------
    >>> sent = pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"], utc=True))
    >>> sends = complete_sends(sent, last_event=pd.Timestamp("2024-03-15", tz="UTC"),
    ...                        window_days=30, max_campaigns=5)
    >>> [s.strftime("%Y-%m-%d") for s in sends]
    ['2024-01-01', '2024-02-01']
    """
    window = pd.Timedelta(days=window_days)
    distinct = sorted(pd.Timestamp(ts) for ts in sent_ts.unique())
    complete = [ts for ts in distinct if ts + window <= last_event]
    return complete[-max_campaigns:] if max_campaigns > 0 else []


def _epoch_us(ts: pd.Series) -> npt.NDArray[np.int64]:
    return np.asarray(ts.astype("datetime64[us, UTC]").astype("int64"), dtype=np.int64)


def purchase_labels(
    events: EventSource,
    targets: pd.DataFrame,
    *,
    config: LifecycleConfig,
    window_days: int,
    threads: int = 1,
) -> npt.NDArray[np.int64]:
    """Return 1 where a target's customer bought in ``[sent_ts, sent_ts + window_days)``.

    One range join in DuckDB (no loop over customers); days are 24-hour days.

    Parameters
    ----------
    events
        Canonical events or a Parquet path.
    targets
        Rows with ``customer_id`` and ``sent_ts`` (UTC).
    config
        Which event types are purchases (``stages.purchase_events``).
    window_days
        Outcome window length.
    threads
        DuckDB threads.

    Returns
    -------
    numpy.ndarray
        0/1 per row of ``targets``, in its order.
    """
    rows = pd.DataFrame(
        {
            "row_id": np.arange(len(targets), dtype=np.int64),
            "customer_id": targets["customer_id"].astype("str").to_numpy(),
            "sent_us": _epoch_us(targets["sent_ts"]),
        }
    )
    con = connect(threads)
    try:
        register_events(con, events)
        con.register("targets", rows)
        hits = con.execute(
            f"""
            SELECT DISTINCT t.row_id
            FROM targets t JOIN events e ON e.customer_id = t.customer_id
            WHERE e.event_type IN ({sql_list(config.stages.purchase_events)})
              AND epoch_us(e.event_ts) >= t.sent_us
              AND epoch_us(e.event_ts) < t.sent_us + {int(window_days) * DAY_US}
            """  # noqa: S608 - only config-derived, quoted literals and an int are interpolated
        ).fetchnumpy()["row_id"]
    finally:
        con.close()
    labels = np.zeros(len(targets), dtype=np.int64)
    labels[np.asarray(hits, dtype=np.int64)] = 1
    return labels


def _last_event(events: EventSource, threads: int) -> pd.Timestamp:
    con = connect(threads)
    try:
        register_events(con, events)
        (last,) = con.execute("SELECT max(epoch_us(event_ts)) FROM events").fetchall()[0]
    finally:
        con.close()
    if last is None:
        raise ValueError("the event log has no events")
    return pd.Timestamp(last, unit="us", tz="UTC")


def campaign_frame(
    events: EventSource,
    campaigns: pd.DataFrame | str | Path,
    *,
    config: LifecycleConfig | None = None,
    window_days: int = 30,
    max_campaigns: int = 12,
    threads: int = 1,
) -> pd.DataFrame:
    """Build the uplift training frame: features at each send and the purchase that followed.

    Parameters
    ----------
    events
        Canonical events (frame, Arrow table, or Parquet path).
    campaigns
        Randomised assignments (frame or Parquet path) with :data:`CAMPAIGN_COLUMNS`.
    config
        Lifecycle config for the features and the purchase events; the default when None.
    window_days
        Outcome window after each send.
    max_campaigns
        How many of the latest distinct send times to use, among those whose whole outcome
        window lies before the last event (later sends are not yet observable).
    threads
        DuckDB threads.

    Returns
    -------
    pandas.DataFrame
        One row per targeted customer per send, sorted by ``cutoff``, ``customer_id`` and
        ``campaign_id``: :data:`FRAME_COLUMNS` (``cutoff`` is the send time, ``treated`` a bool,
        ``purchased`` 0/1) then :func:`lifecycle.features.build.feature_columns`. Features use
        events
        strictly before the send, so a treated customer's exposure at the send is not counted.
        Targeted customers with no event before the send have no features and are left out.

    Raises
    ------
    ValueError
        When no send has a complete outcome window.
    """
    config = config or LifecycleConfig()
    table = read_campaigns(campaigns)
    last = _last_event(events, threads)
    sends = complete_sends(
        table["sent_ts"], last_event=last, window_days=window_days, max_campaigns=max_campaigns
    )
    if not sends:
        raise ValueError(
            f"no campaign send has a complete {window_days}-day outcome window before the last "
            f"event ({last.isoformat()})"
        )
    targets = table[table["sent_ts"].isin(sends)].reset_index(drop=True)
    targets["purchased"] = purchase_labels(
        events, targets, config=config, window_days=window_days, threads=threads
    )
    targets["treated"] = targets["group"].eq("treatment").to_numpy(dtype=bool)
    targets = targets.rename(columns={"sent_ts": "cutoff"})
    names = feature_columns(config)
    features = build_features(events, cutoffs=sends, config=config, threads=threads)
    frame = targets.merge(
        features[[*KEY_COLUMNS, "stage", "rfm_segment", *names]],
        on=list(KEY_COLUMNS),
        how="inner",
        validate="many_to_one",
    )
    frame = frame[[*FRAME_COLUMNS, *names]]
    return frame.sort_values(["cutoff", "customer_id", "campaign_id"], ignore_index=True)


def holdout_mask(customer_ids: pd.Series, *, share: float, seed: int) -> BoolArray:
    """Pick a seeded share of customers (all their rows) for evaluation.

    The draw is over the sorted distinct ids, so it does not depend on row order.

    Examples
    --------
    >>> holdout_mask(pd.Series(["a", "b", "a"]), share=0.5, seed=0).tolist()
    [False, True, False]
    """
    codes, uniques = pd.factorize(customer_ids.astype("str"), sort=True)
    picked = np.random.default_rng(seed).random(len(uniques)) < share
    return np.asarray(picked[codes], dtype=bool)


def customer_folds(customer_ids: pd.Series, *, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Assign each customer (all their rows) to one of ``folds`` seeded folds.

    Like :func:`holdout_mask`, the draw is over the sorted distinct ids.

    Examples
    --------
    >>> customer_folds(pd.Series(["a", "b", "a"]), folds=2, seed=0).tolist()
    [1, 1, 1]
    """
    codes, uniques = pd.factorize(customer_ids.astype("str"), sort=True)
    drawn = np.random.default_rng(seed).integers(0, folds, size=len(uniques))
    return np.asarray(drawn[codes], dtype=np.int64)


def qini_coefficient(
    uplift: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike
) -> float:
    """Area between the Qini curve and random targeting, in incremental buyers per customer.

    Customers are ordered by predicted uplift, highest first. After targeting the top ``k``,
    the Qini curve counts the incremental buyers ``Q(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k)``
    (treated buyers minus control buyers scaled to the treated count; the control term is 0
    while ``N_c(k)`` is 0). With ``x = k / N`` and ``g = Q(k) / N``, the coefficient is the
    trapezoid area under ``g(x)`` minus the area under the random line from ``(0, 0)`` to
    ``(1, g(1))``: 0 for a random order, positive when high predictions find the customers the
    treatment moves. Customers with equal predictions form one block (the curve is evaluated at
    block ends only), so ties never depend on row order.

    Parameters
    ----------
    uplift
        Predicted uplift per customer.
    treated
        Whether each customer was treated.
    outcome
        0/1 outcome per customer.

    Returns
    -------
    float
        The coefficient, NaN without rows in both arms.

    Examples
    --------
    >>> round(qini_coefficient([0.9, 0.1, 0.8, 0.2], [1, 1, 0, 0], [1, 0, 0, 0]), 4)
    0.0938
    """
    u = np.asarray(uplift, dtype=np.float64)
    t = np.asarray(treated, dtype=bool)
    y = np.asarray(outcome, dtype=np.float64)
    if u.size == 0 or t.all() or not t.any():
        return float("nan")
    order = np.argsort(-u, kind="stable")
    u, t, y = u[order], t[order], y[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    scale = np.divide(n_t, n_c, out=np.zeros(u.size), where=n_c > 0)
    gains = y_t - y_c * scale
    ends = np.r_[np.flatnonzero(np.diff(u) != 0), u.size - 1]
    x = np.r_[0.0, (ends + 1) / u.size]
    g = np.r_[0.0, gains[ends] / u.size]
    return float(np.trapezoid(g, x) - g[-1] / 2)


def _skip_reason(treated: BoolArray, purchased: FloatArray, min_rows: int) -> str | None:
    """Why an offer's rows cannot train both arms' classifiers, or None when they can."""
    for arm, rows in (("treated", treated), ("control", ~treated)):
        count = int(rows.sum())
        if count < min_rows:
            return f"{arm} arm has {count} rows, fewer than {min_rows}"
        if np.unique(purchased[rows]).size < 2:
            return f"every {arm} row has the same outcome"
    return None


def _observed_ate(treated: BoolArray, purchased: FloatArray) -> float | None:
    """Treated minus control purchase rate; None when an arm is empty."""
    if treated.all() or not treated.any():
        return None
    return float(purchased[treated].mean() - purchased[~treated].mean())


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else value


def pseudo_outcome(
    treated: npt.ArrayLike,
    outcome: npt.ArrayLike,
    treated_p: npt.ArrayLike,
    control_p: npt.ArrayLike,
    *,
    treated_share: float,
) -> FloatArray:
    """Doubly robust pseudo-outcome of a randomised trial: its mean given x is the uplift.

    ``m1 - m0 + t (y - m1) / e - (1 - t) (y - m0) / (1 - e)`` with the arms' predicted
    probabilities ``m1``, ``m0`` (from models that did not see the row) and the treated
    share ``e``. Unbiased for the uplift whatever ``m`` are (randomisation); good ``m`` only
    lower its variance.

    Examples
    --------
    >>> pseudo_outcome([1, 0], [1, 0], [0.5, 0.5], [0.2, 0.2], treated_share=0.5).tolist()
    [1.3, 0.7]
    """
    t = np.asarray(treated, dtype=bool)
    y = np.asarray(outcome, dtype=np.float64)
    m1 = np.asarray(treated_p, dtype=np.float64)
    m0 = np.asarray(control_p, dtype=np.float64)
    if not 0 < treated_share < 1:
        raise ValueError(f"the treated share must be in (0, 1), got {treated_share}")
    residual = np.where(t, (y - m1) / treated_share, -(y - m0) / (1.0 - treated_share))
    return np.asarray(m1 - m0 + residual, dtype=np.float64)


def relative_lift(effect: float | None, baseline: npt.ArrayLike) -> float:
    """Return an observed average effect as a multiple of the mean baseline purchase chance.

    ``effect / mean(baseline)``: spreading the effect over customers in proportion to their
    baseline keeps its average; 0 without an effect or a positive baseline.

    Examples
    --------
    >>> relative_lift(0.03, [0.1, 0.5])
    0.1
    """
    base = np.asarray(baseline, dtype=np.float64)
    mean = float(base.mean()) if base.size else 0.0
    if effect is None or not mean > 0:
        return 0.0
    return float(effect) / mean


def calibration_slope(predicted: npt.ArrayLike, observed: npt.ArrayLike) -> float:
    """Least-squares slope of observed (pseudo-)outcomes on predicted uplift, clipped to [0, 1].

    1 when the predictions are right on average at every level, 0 when they carry no signal
    (or rank backwards); in between, how far they must be shrunk toward their mean. NaN
    with fewer than 2 distinct predictions.

    Examples
    --------
    >>> calibration_slope([0.0, 0.1, 0.2, 0.3], [0.0, 0.05, 0.1, 0.15])
    0.5
    """
    p = np.asarray(predicted, dtype=np.float64)
    o = np.asarray(observed, dtype=np.float64)
    centred = p - p.mean() if p.size else p
    spread = float((centred**2).sum())
    if p.size < 2 or spread <= 0:
        return float("nan")
    return float(np.clip((centred * (o - o.mean())).sum() / spread, 0.0, 1.0))


class TwoModelUplift:
    """Per-offer uplift from randomised campaigns: a treated and a control LightGBM classifier.

    The uplift of a customer for an offer is ``P(purchase | treated) - P(purchase | control)``,
    each probability from its own arm's classifier (the T-learner). ``fit`` first trains on 70%
    of the customers and measures the Qini coefficient on the other 30% (seeded split by
    customer), then refits on all rows: the Qini describes the procedure, the final models use
    every row. It then calibrates the estimates (``calibration_``, per offer ``intercept``,
    ``lift`` and ``slope``; :meth:`predict_matrix`): a control model pooled over every offer's
    control rows (``baseline_``) gives each customer's chance of buying without an offer, the
    ``lift`` is the offer's observed effect divided by the mean of that chance, and the
    ``slope`` is how far the arms' difference adds to that on held-out customers
    (cross-fitted over ``calibration_folds`` folds, clipped to [0, 1]). With no signal the
    estimate is the observed effect in proportion to the baseline; the estimates average to
    the observed effect on the training rows.

    Parameters
    ----------
    feature_names
        Feature columns, in order (e.g. :func:`lifecycle.features.build.feature_columns`).
    seed, threads
        LightGBM seed and threads, and the seed of the holdout split.
    params
        LightGBM structure parameters overriding :data:`DEFAULT_PARAMS`.
    num_boost_round
        Boosting rounds per classifier (no early stopping: the arms are small).
    min_arm_rows
        Offers with fewer rows in either arm are skipped (reason in ``skipped_``).
    holdout_share
        Share of customers held out for the Qini coefficient.
    calibration_folds
        Folds (split by customer) of the cross-fitting that calibrates the estimates.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 2000
    >>> frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "offer": "bundle",
    ...     "treated": rng.random(n) < 0.5, "x": rng.random(n)})
    >>> frame["purchased"] = (rng.random(n) < 0.1 + 0.3 * frame["treated"] * frame["x"]).astype(int)
    >>> model = TwoModelUplift(["x"], num_boost_round=20).fit(frame)
    >>> model.offers
    ('bundle',)
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        *,
        seed: int = 42,
        threads: int = 1,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 200,
        min_arm_rows: int = 200,
        holdout_share: float = 0.3,
        calibration_folds: int = 3,
    ) -> None:
        if calibration_folds < 2:
            raise ValueError(f"calibration needs at least 2 folds, got {calibration_folds}")
        self.feature_names = list(feature_names)
        self.seed = seed
        self.threads = threads
        self.params = dict(params or {})
        self.num_boost_round = num_boost_round
        self.min_arm_rows = min_arm_rows
        self.holdout_share = holdout_share
        self.calibration_folds = calibration_folds

    def lgb_params(self) -> dict[str, Any]:
        """Return the full LightGBM parameters each arm's classifier trains with."""
        return {
            "objective": "binary",
            **DEFAULT_PARAMS,
            **self.params,
            **base_params(seed=self.seed, threads=self.threads),
        }

    @property
    def offers(self) -> tuple[str, ...]:
        """Offers with fitted models, sorted."""
        self._check_fitted()
        return tuple(self.boosters_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "boosters_"):
            raise RuntimeError("this TwoModelUplift is not fitted yet")

    def _train(self, x: FloatArray, y: FloatArray) -> lgb.Booster:
        data = lgb.Dataset(x, label=y, feature_name=self.feature_names, free_raw_data=True)
        return lgb.train(self.lgb_params(), data, num_boost_round=self.num_boost_round)

    def _train_pair(
        self, x: FloatArray, treated: BoolArray, y: FloatArray
    ) -> tuple[lgb.Booster, lgb.Booster]:
        return self._train(x[treated], y[treated]), self._train(x[~treated], y[~treated])

    @staticmethod
    def _uplift(pair: tuple[lgb.Booster, lgb.Booster], x: FloatArray) -> FloatArray:
        treated_model, control_model = pair
        treated_p = np.asarray(treated_model.predict(x), dtype=np.float64)
        return treated_p - np.asarray(control_model.predict(x), dtype=np.float64)

    def _holdout_qini(
        self, x: FloatArray, treated: BoolArray, y: FloatArray, holdout: BoolArray
    ) -> float:
        """Qini of models trained without the held-out customers, measured on them."""
        train = ~holdout
        if _skip_reason(treated[train], y[train], 1) is not None:
            return float("nan")
        pair = self._train_pair(x[train], treated[train], y[train])
        return qini_coefficient(self._uplift(pair, x[holdout]), treated[holdout], y[holdout])

    def _cross_fitted_slope(
        self,
        x: FloatArray,
        treated: BoolArray,
        y: FloatArray,
        fold: npt.NDArray[np.int64],
        baseline: FloatArray,
    ) -> float:
        """Calibration slope of the learner's out-of-fold estimates beyond the proportional effect.

        Every row is predicted by arm models fitted on the other folds (split by customer), so
        the slope uses every row and no row judges a model that saw it. The outcome is the
        row's pseudo-outcome minus the proportional effect (the fold's relative lift times the
        row's out-of-fold ``baseline``); predictions and outcomes are centred within each fold
        (each fold's models have their own mean). NaN when no fold can be used.
        """
        predicted: list[FloatArray] = []
        observed: list[FloatArray] = []
        for k in np.unique(fold):
            train, test = fold != k, fold == k
            t = treated[test]
            if _skip_reason(treated[train], y[train], 1) is not None or t.all() or not t.any():
                continue
            treated_model, control_model = pair = self._train_pair(
                x[train], treated[train], y[train]
            )
            p = self._uplift(pair, x[test])
            o = pseudo_outcome(
                t,
                y[test],
                np.asarray(treated_model.predict(x[test]), dtype=np.float64),
                np.asarray(control_model.predict(x[test]), dtype=np.float64),
                treated_share=float(t.mean()),
            )
            lift = relative_lift(_observed_ate(treated[train], y[train]), baseline[train])
            o = o - lift * baseline[test]
            predicted.append(p - p.mean())
            observed.append(o - o.mean())
        if not predicted:
            return float("nan")
        return calibration_slope(np.concatenate(predicted), np.concatenate(observed))

    def _fit_baseline(
        self, x: FloatArray, treated: BoolArray, y: FloatArray, fold: npt.NDArray[np.int64]
    ) -> FloatArray:
        """Fit ``baseline_`` on every offer's control rows; return out-of-fold predictions.

        NaN predictions (and no ``baseline_``) when the control rows cannot train a model.
        """
        out = np.full(len(y), np.nan)
        control = ~treated
        if np.unique(y[control]).size < 2:
            return out
        for k in np.unique(fold):
            train = control & (fold != k)
            if np.unique(y[train]).size < 2:
                return np.full(len(y), np.nan)
            out[fold == k] = self._train(x[train], y[train]).predict(x[fold == k])
        self.baseline_ = self._train(x[control], y[control])
        return out

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit both arms' classifiers for every offer with enough rows.

        Parameters
        ----------
        frame
            Rows of :func:`campaign_frame`: ``customer_id``, ``offer``, ``treated``,
            ``purchased`` and the feature columns.

        Returns
        -------
        TwoModelUplift
            Self, with ``boosters_`` (offer -> (treated, control) boosters), ``skipped_``
            (offer -> reason), ``summary_``, ``baseline_`` (the pooled control model) and
            ``calibration_`` (offer -> ``intercept``, ``lift``, ``slope``).
        """
        missing = [c for c in ("customer_id", "offer", "treated", "purchased") if c not in frame]
        if missing:
            raise ValueError(f"the campaign frame lacks the column(s) {', '.join(missing)}")
        x = matrix(frame, self.feature_names)
        treated = frame["treated"].to_numpy(dtype=bool)
        y = frame["purchased"].to_numpy(dtype=np.float64)
        offer = frame["offer"].astype("str").to_numpy()
        holdout = holdout_mask(frame["customer_id"], share=self.holdout_share, seed=self.seed)
        fold = customer_folds(frame["customer_id"], folds=self.calibration_folds, seed=self.seed)
        self.boosters_: dict[str, tuple[lgb.Booster, lgb.Booster]] = {}
        self.skipped_: dict[str, str] = {}
        self.summary_: dict[str, dict[str, Any]] = {}
        self.calibration_: dict[str, dict[str, float]] = {}
        baseline = self._fit_baseline(x, treated, y, fold)
        final_baseline = (
            np.asarray(self.baseline_.predict(x), dtype=np.float64)
            if hasattr(self, "baseline_")
            else baseline
        )
        for name in sorted(set(offer)):
            rows = offer == name
            self.summary_[name] = self._fit_offer(
                name,
                x[rows],
                treated[rows],
                y[rows],
                holdout[rows],
                fold[rows],
                (baseline[rows], final_baseline[rows]),
            )
        return self

    def _fit_offer(
        self,
        offer: str,
        x: FloatArray,
        treated: BoolArray,
        y: FloatArray,
        holdout: BoolArray,
        fold: npt.NDArray[np.int64],
        baseline: tuple[FloatArray, FloatArray],
    ) -> dict[str, Any]:
        """Fit one offer (or record why not) and return its summary entry."""
        entry: dict[str, Any] = {
            "rows_treated": int(treated.sum()),
            "rows_control": int((~treated).sum()),
            "observed_ate": _observed_ate(treated, y),
            "mean_predicted_uplift": None,
            "qini": None,
            "holdout_rows": int(holdout.sum()),
            "skipped": _skip_reason(treated, y, self.min_arm_rows),
            "relative_lift": None,
            "calibration_slope": None,
        }
        if entry["skipped"] is not None:
            self.skipped_[offer] = entry["skipped"]
            return entry
        entry["qini"] = _optional(self._holdout_qini(x, treated, y, holdout))
        out_of_fold, final = baseline
        usable = not np.isnan(out_of_fold).any()
        slope = self._cross_fitted_slope(
            x, treated, y, fold, out_of_fold if usable else np.zeros(len(y))
        )
        pair = self._train_pair(x, treated, y)
        self.boosters_[offer] = pair
        raw_mean = float(self._uplift(pair, x).mean())
        entry["mean_predicted_uplift"] = raw_mean
        # Per-customer T-learner estimates from a few thousand rows are mostly noise, and the
        # highest estimates are the most over-estimated: ranking by them picks noise. The
        # calibrated estimate is the offer's observed effect spread over customers in
        # proportion to their chance of buying without it (a relative lift, measured on all
        # of the offer's rows), plus the learner's estimates shrunk by the slope they showed
        # on held-out customers beyond that (0: no signal left, 1: taken as they are).
        ate = entry["observed_ate"] or 0.0
        lift = relative_lift(ate, final) if usable else 0.0
        slope = 0.0 if np.isnan(slope) else slope
        entry["relative_lift"] = lift
        entry["calibration_slope"] = slope
        entry["individual"] = slope > 0 or lift != 0
        # the intercept makes the calibrated estimates average to the observed effect
        intercept = ate - (lift * float(final.mean()) if usable else 0.0) - slope * raw_mean
        self.calibration_[offer] = {"intercept": intercept, "lift": lift, "slope": slope}
        return entry

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Estimated uplift of every fitted offer for each row.

        Parameters
        ----------
        features
            Rows with the feature columns (e.g. :func:`lifecycle.features.build.build_features`).

        Returns
        -------
        pandas.DataFrame
            One float column per offer of :attr:`offers`, on the index of ``features``.
        """
        self._check_fitted()
        return pd.DataFrame(
            self.predict_matrix(matrix(features, self.feature_names)),
            index=features.index,
            columns=list(self.boosters_),
            dtype=np.float64,
        )

    def predict_matrix(self, x: FloatArray) -> dict[str, FloatArray]:
        """Estimated uplift per offer for a float64 matrix in :attr:`feature_names` order.

        The estimates are calibrated (``calibration_``): ``intercept + lift * baseline +
        slope * raw``, where ``baseline`` is the chance of a purchase without an offer
        (``baseline_``) and ``raw`` the two arms' difference; with no signal in ``raw``, every
        row gets the offer's observed effect in proportion to its baseline. A model saved
        before calibration existed has no ``calibration_``: it keeps its raw estimates where
        its held-out Qini was positive, the average effect elsewhere.
        """
        self._check_fitted()
        calibration: dict[str, dict[str, float]] | None = getattr(self, "calibration_", None)
        baseline: FloatArray | None = None
        if calibration and any(c["lift"] != 0 for c in calibration.values()):
            baseline = np.asarray(self.baseline_.predict(x), dtype=np.float64)
        out: dict[str, FloatArray] = {}
        for offer, pair in self.boosters_.items():
            entry = self.summary_[offer]
            if calibration is not None:
                c = calibration[offer]
                value = np.full(len(x), c["intercept"])
                if c["lift"] != 0 and baseline is not None:
                    value = value + c["lift"] * baseline
                if c["slope"] > 0:
                    value = value + c["slope"] * self._uplift(pair, x)
                out[offer] = value
            elif entry.get("individual", True):
                out[offer] = self._uplift(pair, x)
            else:
                out[offer] = np.full(len(x), float(entry["observed_ate"] or 0.0))
        return out

    def predict_raw(self, x: FloatArray) -> dict[str, FloatArray]:
        """Uncalibrated uplift per offer (treated minus control probability) for a matrix."""
        self._check_fitted()
        return {offer: self._uplift(pair, x) for offer, pair in self.boosters_.items()}

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per offer: arm sizes, observed ATE, mean predicted uplift, holdout Qini, skip reason.

        Returns
        -------
        dict
            Offer -> ``rows_treated``, ``rows_control``, ``observed_ate`` (treated minus
            control purchase rate), ``mean_predicted_uplift`` (final models, all rows),
            ``qini`` (:func:`qini_coefficient` on the held-out customers), ``holdout_rows``,
            ``skipped`` (the reason, or None), ``relative_lift`` and ``calibration_slope``
            (the calibration, :meth:`predict_matrix`) and ``individual`` (whether estimates
            differ between customers: a lift or a slope that is not 0). Values not available
            are None.
        """
        self._check_fitted()
        return {offer: dict(entry) for offer, entry in self.summary_.items()}


__all__ = [
    "CAMPAIGN_COLUMNS",
    "DEFAULT_PARAMS",
    "FRAME_COLUMNS",
    "TwoModelUplift",
    "calibration_slope",
    "campaign_frame",
    "complete_sends",
    "customer_folds",
    "holdout_mask",
    "pseudo_outcome",
    "purchase_labels",
    "qini_coefficient",
    "read_campaigns",
    "relative_lift",
]
