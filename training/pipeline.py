"""The training pipeline: cutoffs -> features -> labels -> tuned, calibrated models -> evaluation.

:func:`run_training` is pure (no MLflow, no files): it returns fitted estimators, the summary
that the report and model cards render, and the evaluation sets. :func:`train_and_log` adds the
files (plots, HTML report, model cards) and the MLflow run and registry versions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.features.build import (
    EventLog,
    build_features,
    feature_columns,
    read_event_log,
)
from lifecycle.features.definitions import churn_monotone
from lifecycle.features.schema import STAGES
from lifecycle.models.btyd import BtydParams
from lifecycle.models.distribution import ClvDistribution
from lifecycle.models.hybrid import BtydPrior, fit_btyd_by_cutoff
from lifecycle.models.lgbm import (
    ClvRegressor,
    FloatArray,
    LifecycleClassifier,
    LifecycleEstimator,
)
from lifecycle.models.rules import RfmCellRate, last_period
from lifecycle.models.tasks import Task, eligible, spec
from lifecycle.training.config import TrainingConfig
from lifecycle.training.labels import (
    build_labels,
    observation_end,
    purchase_day_labels,
    window_end,
)
from lifecycle.training.metrics import (
    classification_metrics,
    interval_report,
    metrics_by_group,
    regression_metrics,
)
from lifecycle.training.readiness import NotReady, assess
from lifecycle.training.splits import (
    Split,
    SplitError,
    candidate_cutoffs,
    customer_groups,
    customer_split,
    time_split,
)
from lifecycle.training.tune import TuningResult, tune

Progress = Callable[[str], None]


@dataclass
class TaskResult:
    """One task's fitted model, its split, tuning, evaluation summary and evaluation rows."""

    task: Task
    split: Split
    estimator: LifecycleEstimator
    tuning: TuningResult
    summary: dict[str, Any]
    evaluation: pd.DataFrame
    """Eligible rows at the evaluation cutoff: features, ``label``, the model's predictions and
    each baseline's score (columns ``score_<name>``)."""
    shap_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    contributions: FloatArray = field(default_factory=lambda: np.empty((0, 0)))
    fit_data: tuple[pd.DataFrame, FloatArray, pd.DataFrame, FloatArray] | None = None
    """Training rows and labels, validation rows and labels (for comparisons in benchmarks)."""


@dataclass
class TrainingResult:
    """Everything one training run produced, before anything is written."""

    config: TrainingConfig
    data: dict[str, Any]
    tasks: dict[Task, TaskResult]
    seconds: float
    btyd: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The hybrid's BTYD model at each cutoff (ISO date -> parameters); empty for lightgbm."""
    readiness: dict[str, Any] = field(default_factory=dict)
    """What the log supports, per task (:meth:`lifecycle.training.readiness.Readiness.to_dict`)."""

    def summary(self, run: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return the summary the HTML report and model cards render."""
        return {
            "run": run or {},
            "data": self.data,
            "readiness": self.readiness,
            "tasks": {task: result.summary for task, result in self.tasks.items()},
        }


def fingerprint(log: EventLog) -> dict[str, Any]:
    """Describe the events: a content hash, row and customer counts, and the period."""
    return {
        "fingerprint": log.digest,
        "rows": log.rows,
        "customers": log.customers,
        "period_start": log.first.isoformat(),
        "period_end": log.last.isoformat(),
        "source": log.source,
    }


def _splits(
    config: TrainingConfig, cutoffs: Sequence[pd.Timestamp], end: pd.Timestamp
) -> dict[Task, dict[str, Split]]:
    out: dict[Task, dict[str, Split]] = {}
    for task in config.tasks:
        h = config.horizons.of(task)
        kwargs = {"horizon_days": h, "end": end, "max_train_cutoffs": config.max_train_cutoffs}
        try:
            chosen: dict[str, Split] = {}
            if config.protocol == "time":
                chosen["time"] = time_split(cutoffs, **kwargs)  # type: ignore[arg-type]
            if config.protocol == "customer" or config.report_customer_split:
                chosen["customer"] = customer_split(cutoffs, **kwargs)  # type: ignore[arg-type]
        except SplitError as exc:
            raise SplitError(f"{task}: {exc}") from exc
        out[task] = chosen
    return out


def _bgnbd_scores(
    events: Any, config: TrainingConfig, task: Task, rows: pd.DataFrame, cutoff: pd.Timestamp
) -> FloatArray | None:
    """BG/NBD (+ Gamma-Gamma) predictions for ``rows``, or None when unavailable here."""
    output = spec(task).btyd_baseline
    if output is None or "bgnbd" not in config.baselines:
        return None
    try:
        from lifecycle.models.baselines import BetaGeoGammaGammaBaseline, rfm_summary
    except ImportError:  # the optional `baselines` extra is not installed
        return None
    if output == "p_no_purchase" and set(config.qualifying_events()) != set(
        config.lifecycle.stages.purchase_events
    ):
        return None  # BG/NBD models purchases only
    log = _purchase_log(events, config)
    rules = config.lifecycle
    summary = rfm_summary(
        log,
        cutoff=cutoff,
        purchase_events=rules.stages.purchase_events,
        refund_events=rules.features.refund_events,
    )
    if len(summary) < 50 or int((summary["frequency"] > 0).sum()) < 20:
        return None
    horizon = config.horizons.of(task)
    # FAST_COMPILE skips pytensor's C compilation (~40-70 s the first time on a machine); it
    # fits ~4x slower, which only outweighs that beyond some 50,000 customers.
    mode = "FAST_COMPILE" if len(summary) <= 50_000 else None
    model = BetaGeoGammaGammaBaseline(seed=config.seed, compile_mode=mode).fit(summary)
    pred = model.predict(summary, horizon_days=horizon)
    ids = rows["customer_id"].astype(str)
    if output == "p_no_purchase":
        p_buy = pred["probability_purchase"].reindex(ids).to_numpy(dtype=float)
        return 1.0 - p_buy
    clv = pred["expected_clv"].reindex(ids).to_numpy(dtype=float)
    if model.gg_model_ is None:
        return None  # no amounts: BG/NBD serves churn, not CLV in money
    return np.nan_to_num(clv, nan=0.0)


def _purchase_log(events: Any, config: TrainingConfig) -> pd.DataFrame:
    """Purchase and refund events as a frame (what BTYD models need)."""
    from lifecycle.features.build import connect, register_events

    wanted = (*config.lifecycle.stages.purchase_events, *config.lifecycle.features.refund_events)
    con = connect()
    try:
        register_events(con, events)
        return con.sql(
            "SELECT customer_id, event_ts, event_type, revenue FROM events "
            "WHERE list_contains($types, event_type)",
            params={"types": list(wanted)},
        ).df()
    finally:
        con.close()


def _oracle(
    truth: pd.DataFrame | None,
    task: Task,
    horizon: int,
    rows: pd.DataFrame,
    cutoff: pd.Timestamp,
    config: TrainingConfig,
) -> FloatArray | None:
    column = spec(task).oracle_column(horizon)
    if truth is None or column is None:
        return None
    if task == "churn" and set(config.qualifying_events()) != {"purchase"}:
        return None  # the truth's churn is "no purchase"; another label has no oracle here
    at = truth.loc[pd.to_datetime(truth["as_of"], utc=True) == cutoff, ["customer_id", column]]
    if at.empty:
        return None
    values = at.set_index("customer_id")[column].reindex(rows["customer_id"].astype(str))
    return values.to_numpy(dtype=float)


def _metrics(
    task: Task, y: FloatArray, score: FloatArray, **interval: FloatArray
) -> dict[str, float]:
    if spec(task).kind == "regression":
        return regression_metrics(y, score, **interval)
    return classification_metrics(y, np.clip(score, 0.0, 1.0))


def _evaluate(
    task: Task,
    rows: pd.DataFrame,
    y: FloatArray,
    scores: dict[str, FloatArray],
    interval: dict[str, FloatArray],
) -> dict[str, dict[str, Any]]:
    """Overall and per-stage metrics for the model and each baseline, on the same rows."""
    stages = rows["stage"].astype(str).to_numpy()
    out: dict[str, dict[str, Any]] = {}
    for name, score in scores.items():
        keep = np.isfinite(score)
        extra = {k: v[keep] for k, v in interval.items()} if name == "model" else {}
        overall = _metrics(task, y[keep], score[keep], **extra)
        names = tuple(extra)

        def metric(yy: FloatArray, ss: FloatArray, *iv: FloatArray, names: tuple = names) -> Any:
            return _metrics(task, yy, ss, **dict(zip(names, iv, strict=True)))

        by_stage = metrics_by_group(
            stages[keep],
            metric,
            y[keep],
            score[keep],
            *extra.values(),
            min_rows=20,
        )
        ordered = {s: by_stage[s] for s in STAGES if s in by_stage}
        out[name] = {"overall": overall, "by_stage": ordered}
    return out


@dataclass(frozen=True)
class Hybrid:
    """What a hybrid estimator is fitted with.

    The BTYD fits per cutoff and, for CLV, the purchase days in each row's horizon (training
    and validation rows).
    """

    fits: dict[pd.Timestamp, BtydParams]
    counts: tuple[FloatArray, FloatArray] | None = None


def new_estimator(
    task: Task,
    config: TrainingConfig,
    params: dict[str, Any],
    feature_names: list[str],
    *,
    hybrid: bool,
) -> LifecycleEstimator:
    """Return one task's unfitted estimator, as the config and the learner say."""
    common: dict[str, Any] = {"params": params, "seed": config.seed, "threads": config.threads}
    horizon = config.horizons.of(task)
    if spec(task).kind == "regression":
        if hybrid:
            return ClvDistribution(
                feature_names, horizon_days=horizon, coverage=config.clv_coverage, **common
            )
        return ClvRegressor(feature_names, coverage=config.clv_coverage, **common)
    monotone = churn_monotone(config.lifecycle) if spec(task).monotone else None
    prior = BtydPrior(feature_names, horizon_days=horizon) if hybrid else None
    # churn starts from BTYD's P(no purchase) when churn means "no purchase"; the next stage
    # from P(a purchase) (a first or further purchase is how a buyer moves on)
    purchases = set(config.qualifying_events()) == set(config.lifecycle.stages.purchase_events)
    margin = None
    if hybrid and task == "churn" and purchases:
        margin = "p_no_purchase"
    elif hybrid and task == "next_stage":
        margin = "p_purchase"
    return LifecycleClassifier(
        task,
        feature_names,
        calibration=config.calibration,
        monotone=monotone,
        prior=prior,
        margin=margin,  # type: ignore[arg-type]
        **common,
    )


def fit_estimator(
    task: Task,
    config: TrainingConfig,
    params: dict[str, Any],
    feature_names: list[str],
    train: pd.DataFrame,
    y_train: FloatArray,
    valid: pd.DataFrame,
    y_valid: FloatArray,
    hybrid: Hybrid | None = None,
) -> LifecycleEstimator:
    """Fit one task's estimator with the given booster parameters (calibrated on ``valid``).

    With ``hybrid`` the estimator starts from the BTYD model (:mod:`lifecycle.models.hybrid`).
    """
    estimator = new_estimator(task, config, params, feature_names, hybrid=hybrid is not None)
    if isinstance(estimator, ClvDistribution):
        if hybrid is None or hybrid.counts is None:
            raise ValueError("a CLV distribution is fitted with the purchase days of its rows")
        return estimator.fit(
            train,
            y_train,
            valid,
            y_valid,
            counts_train=hybrid.counts[0],
            counts_valid=hybrid.counts[1],
            btyd_fits=hybrid.fits,
        )
    if isinstance(estimator, LifecycleClassifier):
        fits = hybrid.fits if hybrid is not None else None
        return estimator.fit(train, y_train, valid, y_valid, btyd_fits=fits)
    return estimator.fit(train, y_train, valid, y_valid)


def _model_scores(
    task: Task, estimator: LifecycleEstimator, rows: pd.DataFrame
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    if isinstance(estimator, ClvRegressor | ClvDistribution):
        lo, hi = estimator.predict_interval(rows)
        return {"model": estimator.predict_clv(rows)}, {"lower": lo, "upper": hi}
    return {
        "model": estimator.predict_proba(rows),
        "model_uncalibrated": estimator.predict_uncalibrated(rows),
    }, {}


def _run_task(
    task: Task,
    splits: dict[str, Split],
    features: pd.DataFrame,
    labels: FloatArray,
    events: Any,
    config: TrainingConfig,
    truth: pd.DataFrame | None,
    feature_names: list[str],
    progress: Progress,
    fits: dict[pd.Timestamp, BtydParams] | None = None,
    counts: FloatArray | None = None,
) -> TaskResult:
    horizon = config.horizons.of(task)
    usable = eligible(task, features) & np.isfinite(labels)
    cut = features["cutoff"]
    primary = splits[config.protocol]
    if primary.protocol == "time":
        train_mask = usable & cut.isin(primary.train).to_numpy()
        valid_mask = usable & (cut == primary.valid).to_numpy()
        eval_mask = usable & (cut == primary.eval).to_numpy()
    else:
        groups = customer_groups(features["customer_id"], seed=config.seed)
        train_mask = usable & cut.isin(primary.train).to_numpy() & (groups == "train")
        valid_mask = usable & (cut == primary.eval).to_numpy() & (groups == "valid")
        eval_mask = usable & (cut == primary.eval).to_numpy() & (groups == "eval")
    for name, mask in (
        ("training", train_mask),
        ("validation", valid_mask),
        ("evaluation", eval_mask),
    ):
        if mask.sum() < 50:
            raise SplitError(f"{task}: only {int(mask.sum())} {name} rows; more data is needed")
    train, valid, evaluation = features[train_mask], features[valid_mask], features[eval_mask]
    y_train, y_valid, y_eval = labels[train_mask], labels[valid_mask], labels[eval_mask]
    _check_labels(task, primary, y_train, y_valid)

    hybrid = None
    if fits is not None:
        # the BTYD models of this task's cutoffs only: the model keeps the last one (the
        # evaluation cutoff's), never one fitted on events inside the evaluation window
        fits = {c: p for c, p in fits.items() if c <= primary.eval}
        pair = None if counts is None else (counts[train_mask], counts[valid_mask])
        hybrid = Hybrid(fits, pair)
    tune_rows = _tuning_sample(len(train), config.tuning.max_rows, config.seed)
    sampled = f" (a sample of {len(train):,} training rows)" if len(tune_rows) < len(train) else ""
    progress(f"{task}: tuning on {len(tune_rows):,} rows, validating on {len(valid):,}{sampled}")
    probe = new_estimator(task, config, {}, feature_names, hybrid=hybrid is not None)
    regression = spec(task).kind == "regression"  # Tweedie needs non-negative labels
    y_tune = y_train[tune_rows]
    tune_train = train.iloc[tune_rows]
    # a hybrid's structure is tuned on the trees' own task (the BTYD columns as features);
    # fitting then chooses where the boosting starts (models.hybrid.Start)
    if probe.prior is not None and fits is not None:
        probe.prior.set_fits(fits, tune_train)
    xt, _ = probe._training_design(tune_train, fits)
    xv, _ = probe._training_design(valid, fits)
    tuning = tune(
        task,
        probe.lgb_params(),
        xt,
        np.maximum(y_tune, 0.0) if regression else y_tune,
        xv,
        np.maximum(y_valid, 0.0) if regression else y_valid,
        feature_names=probe.booster_feature_names,
        settings=config.tuning,
        seed=config.seed,
        progress=progress,
    )
    progress(f"{task}: fitting and calibrating")
    estimator = fit_estimator(
        task, config, tuning.best_params, feature_names, train, y_train, valid, y_valid, hybrid
    )

    scores, interval = _model_scores(task, estimator, evaluation)
    progress(f"{task}: baselines")
    rfm = RfmCellRate().fit(train, y_train)
    baselines: dict[str, FloatArray | None] = {
        "rfm": rfm.predict(evaluation) if "rfm" in config.baselines else None,
        "last_period": last_period(task, evaluation, horizon_days=horizon)
        if "last_period" in config.baselines
        else None,
        "bgnbd": _bgnbd_scores(events, config, task, evaluation, primary.eval),
        "oracle": _oracle(truth, task, horizon, evaluation, primary.eval, config),
    }
    scores.update({k: v for k, v in baselines.items() if v is not None})
    progress(f"{task}: metrics")
    metrics = _evaluate(task, evaluation, y_eval, scores, interval)

    summary: dict[str, Any] = {
        "target": task,
        "horizon_days": horizon,
        "protocol": primary.protocol,
        "cutoffs": {
            "train": [c.isoformat() for c in primary.train],
            "valid": primary.valid.isoformat(),
            "eval": primary.eval.isoformat(),
        },
        "rows": {"train": len(train), "valid": len(valid), "eval": len(evaluation)},
        "metrics": metrics,
        "tuning": tuning.summary(),
        "limits": _limits(task, config, primary, scores),
    }
    if isinstance(estimator, LifecycleClassifier):
        before, after = metrics["model_uncalibrated"]["overall"], metrics["model"]["overall"]
        summary["calibration"] = {
            "method": estimator.calibration_method_,
            "ece_before": before["ece"],
            "ece_after": after["ece"],
            "brier_before": before["brier"],
            "brier_after": after["brier"],
        }
    elif isinstance(estimator, ClvDistribution):
        read = estimator.coverage_inputs(evaluation, y_eval, seed=config.seed)
        report = interval_report(
            y_eval, read["p10"], read["p90"], read["implied"], read["pit"], read["clv"]
        )
        summary["interval"] = {
            "coverage_pit": report["overall"]["pit"],
            "coverage_implied": report["overall"]["implied"],
            "by_decile": report["by_decile"],
            "method": (
                "BTYD count distribution corrected by the trees, compound Gamma revenue, "
                "quantile levels calibrated per revenue decile on the validation cutoff"
            ),
            "coverage": metrics["model"]["overall"].get("coverage_p10_p90"),
            "target_coverage": config.clv_coverage,
            "spend_shape": estimator.shape_,
        }
    else:
        summary["interval"] = {
            "method": "conformalized quantile regression (LightGBM quantile 0.1/0.9)",
            "coverage": metrics["model"]["overall"].get("coverage_p10_p90"),
            "target_coverage": config.clv_coverage,
        }
    if "customer" in splits and primary.protocol == "time":
        progress(f"{task}: customer-split protocol")
        summary["customer_split"] = _customer_protocol(
            task,
            splits["customer"],
            features,
            labels,
            usable,
            config,
            tuning,
            feature_names,
            fits,
            counts,
        )

    progress(f"{task}: evaluation rows and SHAP sample")
    frame = evaluation.copy()
    frame["label"] = y_eval
    for name, score in scores.items():
        frame[f"score_{name}"] = score
    for name, values in interval.items():
        frame[f"score_model_{name}"] = values
    sample = evaluation.sample(n=min(config.shap_sample, len(evaluation)), random_state=config.seed)
    return TaskResult(
        task,
        primary,
        estimator,
        tuning,
        summary,
        frame,
        sample,
        estimator.contributions(sample),
        (train, y_train, valid, y_valid),
    )


def _check_labels(task: Task, split: Split, y_train: FloatArray, y_valid: FloatArray) -> None:
    """Refuse, with a clear message, labels that no model can learn or be calibrated on."""
    where = f"{task} ({split.protocol} protocol, validation cutoff {split.valid.date()})"
    if spec(task).kind == "regression":
        if np.maximum(y_train, 0.0).sum() <= 0 or np.maximum(y_valid, 0.0).sum() <= 0:
            raise SplitError(f"{where}: no revenue in the label windows; nothing to learn")
        return
    for name, y in (("training", y_train), ("validation", y_valid)):
        if len(np.unique(y)) < 2:
            raise SplitError(
                f"{where}: every {name} label is {int(y[0])}; a classifier needs both outcomes"
            )


def _customer_protocol(
    task: Task,
    split: Split,
    features: pd.DataFrame,
    labels: FloatArray,
    usable: np.ndarray,
    config: TrainingConfig,
    tuning: TuningResult,
    feature_names: list[str],
    fits: dict[pd.Timestamp, BtydParams] | None = None,
    counts: FloatArray | None = None,
) -> dict[str, Any]:
    """Refit with the tuned parameters on a customer split and score the held-out customers."""
    groups = customer_groups(features["customer_id"], seed=config.seed)
    cut = features["cutoff"]
    at_eval = (cut == split.eval).to_numpy()
    train_mask = usable & cut.isin(split.train).to_numpy() & (groups == "train")
    valid_mask = usable & at_eval & (groups == "valid")
    eval_mask = usable & at_eval & (groups == "eval")
    if min(train_mask.sum(), valid_mask.sum(), eval_mask.sum()) < 50:
        return {}
    hybrid = None
    if fits is not None:
        fits = {c: p for c, p in fits.items() if c <= split.eval}
        pair = None if counts is None else (counts[train_mask], counts[valid_mask])
        hybrid = Hybrid(fits, pair)
    estimator = fit_estimator(
        task,
        config,
        tuning.best_params,
        feature_names,
        features[train_mask],
        labels[train_mask],
        features[valid_mask],
        labels[valid_mask],
        hybrid,
    )
    evaluation = features[eval_mask]
    scores, interval = _model_scores(task, estimator, evaluation)
    scores["rfm"] = RfmCellRate().fit(features[train_mask], labels[train_mask]).predict(evaluation)
    scores["last_period"] = last_period(task, evaluation, horizon_days=split.horizon_days)
    result = _evaluate(task, evaluation, labels[eval_mask], scores, interval)
    result["cutoffs"] = split.as_dict()
    return result


def _limits(
    task: Task, config: TrainingConfig, split: Split, scores: dict[str, FloatArray]
) -> list[str]:
    notes = [
        f"Scores customers as of a cutoff for the next {split.horizon_days} days; it was "
        f"evaluated on the cutoff {split.eval.date()} only.",
    ]
    if split.protocol == "time":
        notes.append(
            f"Trained on cutoffs up to {split.train[-1].date()} and calibrated on "
            f"{split.valid.date()}: the most recent {2 * split.horizon_days} days of behaviour "
            "only reach it through the features."
        )
    else:
        notes.append("Evaluated with a customer split, which is not time-honest.")
    if task == "churn":
        notes.append(
            "Churn is defined by the absence of "
            + ", ".join(config.qualifying_events())
            + f" events for {split.horizon_days} days; customers who never bought are not scored."
        )
    if spec(task).kind == "regression":
        notes.append(
            "Revenue is undiscounted; the interval is marginal (about 80% of customers), "
            "not a per-customer guarantee."
        )
    btyd = spec(task).btyd_baseline is not None
    if "bgnbd" not in scores and "bgnbd" in config.baselines and btyd:
        notes.append("The BG/NBD baseline was not run (optional extra missing or too little data).")
    return notes


def _tuning_sample(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    """Positions of the training rows to tune on: all, or a seeded sample of ``max_rows``."""
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng([seed, n])
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def _btyd_fits(
    config: TrainingConfig, features: pd.DataFrame, cutoffs: set[pd.Timestamp], say: Progress
) -> dict[pd.Timestamp, BtydParams] | None:
    """Return the BTYD model at every cutoff for the hybrid, or None to train ``lightgbm``."""
    if config.learner != "hybrid":
        return None
    say(f"BTYD models at {len(cutoffs)} cutoffs")
    try:
        fits = fit_btyd_by_cutoff(features, cutoffs, seed=config.seed)
    except ValueError as exc:
        say(f"the hybrid learner needs a BTYD model ({exc}); training lightgbm instead")
        return None
    chosen = sorted({p.model for p in fits.values()})
    say(f"BTYD: {', '.join(chosen)} (the likelier model at each cutoff)")
    return fits


def run_training(
    events: Any,
    *,
    config: TrainingConfig | None = None,
    truth: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train, calibrate and evaluate every configured model on one event log.

    Parameters
    ----------
    events
        Canonical events (a Parquet path or folder, or a frame).
    config
        Training config; defaults suit the simulator.
    truth
        The simulator's ``truth.parquet`` as a frame: adds the oracle to every evaluation and
        puts the cutoffs on its 30-day grid.
    progress
        Called with a short message at each step.

    Returns
    -------
    TrainingResult
        Fitted estimators, the summary and evaluation rows per task.

    Raises
    ------
    NotReady
        When the log supports none of the configured tasks (:mod:`lifecycle.training.readiness`
        says why); unsupported tasks among supported ones are skipped and listed in
        ``data["skipped"]``.
    SplitError
        When the data is too short for a horizon under the chosen protocol.
    """
    config = config or TrainingConfig()
    say = progress or (lambda _message: None)
    began = time.perf_counter()
    log = read_event_log(events)
    events = log.events  # every later step reads the events in memory: one read per run
    readiness = assess(log, config=config, truth=truth)
    for line in readiness.lines():
        say(line)
    if not readiness.supported():
        raise NotReady(readiness)
    config = config.model_copy(update={"tasks": readiness.supported()})
    end = observation_end(log, config.cutoffs.observed_until)
    cutoffs = candidate_cutoffs(log, config, end, truth)
    if not cutoffs:
        raise SplitError(f"no cutoff lies between the first event and {end.date()}")
    splits = _splits(config, cutoffs, end)
    needed: set[pd.Timestamp] = set()
    for task_splits in splits.values():
        for split in task_splits.values():
            needed.update({*split.train, split.valid, split.eval})
    later: set[pd.Timestamp] = set()
    if "next_stage" in splits:
        later = {window_end(c, config.horizons.next_stage_days) for c in needed}
    say(f"features at {len(needed | later)} cutoffs")
    all_features = build_features(events, cutoffs=sorted(needed | later), config=config.lifecycle)
    features = all_features[all_features["cutoff"].isin(sorted(needed))].reset_index(drop=True)
    feature_names = [c for c in feature_columns(config.lifecycle) if c in features.columns]
    say("data fingerprint")
    data = fingerprint(log)
    data["observed_until"] = end.isoformat()
    fits = _btyd_fits(config, features, needed, say)
    data["learner"] = "hybrid" if fits is not None else "lightgbm"
    data["skipped"] = readiness.skipped()
    btyd_record = {c.date().isoformat(): p.to_dict() for c, p in sorted((fits or {}).items())}
    results: dict[Task, TaskResult] = {}
    for task, task_splits in splits.items():
        say(f"{task}: labels")
        own = {c for split in task_splits.values() for c in (*split.train, split.valid, split.eval)}
        rows = features[features["cutoff"].isin(sorted(own))].reset_index(drop=True)
        labels = build_labels(
            events,
            rows,
            task=task,
            horizon_days=config.horizons.of(task),
            end=end,
            config=config.lifecycle,
            qualifying_events=config.qualifying_events(),
            later_features=all_features,
        )
        counts = None
        if fits is not None and spec(task).kind == "regression":
            counts = purchase_day_labels(
                events,
                rows,
                horizon_days=config.horizons.of(task),
                end=end,
                config=config.lifecycle,
            )
        results[task] = _run_task(
            task, task_splits, rows, labels, events, config, truth, feature_names, say, fits, counts
        )
    seconds = time.perf_counter() - began
    return TrainingResult(config, data, results, seconds, btyd_record, readiness.to_dict())
