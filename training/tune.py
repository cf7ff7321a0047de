"""Optuna tuning of the LightGBM boosters on the validation cutoff.

TPE with a seed, median pruning on the validation loss reported every boosting round, a trial
count and a time budget. The study lives in memory unless a storage URL is given; with one
(SQLite, PostgreSQL), workers that use the same study name share the study.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.models.lgbm import FloatArray, train_booster
from lifecycle.models.tasks import Task
from lifecycle.training.config import TuningSettings

DEFAULT_PARAMS: dict[str, Any] = {
    "num_leaves": 31,
    "learning_rate": 0.05,
    "min_child_samples": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "lambda_l2": 1.0,
}
"""Parameters used with zero trials, and the first trial of every study."""


@dataclass
class TuningResult:
    """Best parameters, the validation loss they reached, and one row per trial."""

    metric: str
    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> dict[str, Any]:
        """Return counts and the best trial (for the report and MLflow)."""
        states = self.trials["state"].value_counts() if len(self.trials) else pd.Series()
        return {
            "trials": len(self.trials),
            "completed": int(states.get("COMPLETE", 0)),
            "pruned": int(states.get("PRUNED", 0)),
            "best_value": self.best_value,
            "metric": self.metric,
            "best_params": self.best_params,
        }


def _suggest(trial: Any) -> dict[str, Any]:
    bagging = trial.suggest_float("bagging_fraction", 0.5, 1.0)
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": bagging,
        "bagging_freq": 1 if bagging < 1.0 else 0,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }


def tune(
    task: Task,
    base: Mapping[str, Any],
    x_train: FloatArray,
    y_train: FloatArray,
    x_valid: FloatArray,
    y_valid: FloatArray,
    *,
    feature_names: list[str],
    settings: TuningSettings,
    seed: int,
    study_suffix: str = "",
    progress: Callable[[str], None] | None = None,
    init_scores: tuple[FloatArray, FloatArray] | None = None,
) -> TuningResult:
    """Search LightGBM structure parameters that minimise the validation loss.

    Parameters
    ----------
    task
        Which model (names the study).
    base
        Fixed parameters (objective, metric, monotone constraints, deterministic settings).
    x_train, y_train, x_valid, y_valid
        Training rows and the validation cutoff's rows.
    feature_names
        Column names.
    settings
        Trials, time budget, storage, study name, pruning.
    seed
        Seed of the TPE sampler.
    progress
        Called with a line after each trial.
    init_scores
        Raw scores every booster starts from on the training and validation rows (a hybrid
        model's BTYD margin), so that the search tunes the corrections the model will learn.
    study_suffix
        Added to the study name when none is configured (default: a random id, so an unnamed
        study in a shared storage is never reused). With ``timeout_seconds`` the number of
        trials depends on the machine's speed, so results are only reproducible without it.

    Returns
    -------
    TuningResult
        With zero trials, :data:`DEFAULT_PARAMS` and their validation loss.
    """
    metric = str(base["metric"])
    if settings.trials == 0:
        booster = train_booster(
            {**base, **DEFAULT_PARAMS},
            x_train,
            y_train,
            x_valid,
            y_valid,
            feature_names=feature_names,
            init_scores=init_scores,
        )
        return TuningResult(metric, dict(DEFAULT_PARAMS), _best(booster, metric))

    import optuna
    from optuna_integration import LightGBMPruningCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial)
        callbacks = (
            [LightGBMPruningCallback(trial, metric, valid_name="valid")] if settings.pruning else []
        )
        booster = train_booster(
            {**base, **params},
            x_train,
            y_train,
            x_valid,
            y_valid,
            feature_names=feature_names,
            callbacks=callbacks,
            init_scores=init_scores,
        )
        trial.set_user_attr("best_iteration", int(booster.best_iteration))
        return _best(booster, metric)

    study = optuna.create_study(
        study_name=(settings.study_name and f"{settings.study_name}-{task}")
        or f"lifecycle-{task}{study_suffix or '-' + uuid.uuid4().hex[:12]}",
        storage=settings.storage,
        # only a named study is shared: an unnamed one must not pick up another run's trials
        load_if_exists=settings.study_name is not None,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=20)
        if settings.pruning
        else optuna.pruners.NopPruner(),
    )
    if not study.trials:
        study.enqueue_trial({k: v for k, v in DEFAULT_PARAMS.items() if k != "bagging_freq"})

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress is None:
            return
        completed = [t for t in study.trials if t.value is not None]
        best = f"{min(t.value for t in completed):.5f}" if completed else "-"  # type: ignore[type-var]
        progress(
            f"{task}: trial {trial.number + 1} {trial.state.name.lower()}, best {metric} {best}"
        )

    study.optimize(
        objective,
        n_trials=settings.trials,
        timeout=settings.timeout_seconds,
        callbacks=[report],
    )
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs"))
    frame["state"] = frame["state"].astype(str)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(f"no Optuna trial of {task} completed; raise the time budget")
    best = study.best_trial
    params = {**best.params, "bagging_freq": 1 if best.params["bagging_fraction"] < 1.0 else 0}
    return TuningResult(metric, params, float(best.value or np.inf), frame)


def _best(booster: Any, metric: str) -> float:
    value = booster.best_score["valid"][metric]
    return float(value) if np.isfinite(value) else float("inf")
