"""The prediction tasks: one typed specification per task, read by everything else.

A task is what one registered model predicts (``next_stage``, ``churn``, ``clv``). Everything the
rest of the code needs to know about a task lives in its :class:`TaskSpec` here: the columns it
answers with, which customers it applies to, its default horizon, the metric that decides a
promotion, the scale of its explanations, the simulator's oracle column, its registered model
name, the metrics the service shows, which action reasons cite its drivers, whether it takes the
features' monotone directions, and its intended use.

Adding a task means adding its name to :data:`Task`, one :class:`TaskSpec` to :data:`SPECS` and
its label (``lifecycle.training.labels``). A spec that lacks a fact does not construct (every field
is
required), and a task without a spec fails at import. Kept free of LightGBM, MLflow and pandas
so that serving, the CLI and the page import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

Task: TypeAlias = Literal["next_stage", "churn", "clv"]
"""The name of a prediction task."""

Eligibility: TypeAlias = Literal["below_last_stage", "has_purchase", "everyone"]
Scale: TypeAlias = Literal["log_odds", "log_value"]
Direction: TypeAlias = Literal["up", "down"]
Outcome: TypeAlias = Literal["next_stage", "retention", "value", "none"]
"""What a next-best-action aims at (see :mod:`lifecycle.models.nba`)."""

LAST_STAGE_CODE = 4
"""``stage_code`` of loyalty, the last stage: there is no next stage to move to."""


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric that decides a promotion, and how much worse a challenger may be."""

    name: str
    higher_is_better: bool
    tolerance: float
    relative: bool


@dataclass(frozen=True)
class TaskSpec:
    """Every fact about one prediction task; no field has a default, so none can be forgotten.

    Parameters
    ----------
    name
        The task's name.
    kind
        ``classification`` (a calibrated probability) or ``regression`` (a value with an
        interval).
    outputs
        Columns the estimator's ``predict_frame`` answers with; the first is the prediction.
    eligibility
        Which customers the task applies to: ``below_last_stage`` (there is a next stage),
        ``has_purchase`` (at least one purchase) or ``everyone``.
    horizon_field
        The field of ``lifecycle.training.config.Horizons`` that holds the task's horizon in days.
    primary_metric
        The metric that decides a promotion, its direction and tolerance.
    headline_metrics
        Evaluation metrics the service shows in ``/model_info``.
    console_metrics
        Columns of the metrics table ``lifecycle train`` prints.
    scale
        Scale of the booster's raw output, which the SHAP values add up to.
    strength_thresholds
        Bounds on ``|contribution|`` for "slightly" / "moderately" / "strongly" (on ``scale``).
        The classifiers' contributions are log-odds: around a 50 % probability, 0.15 moves it
        by about 4 points and 0.5 by about 12. CLV's are in log space: 0.1 multiplies the
        expected value by about 1.1 and 0.4 by about 1.5.
    oracle_columns
        Horizon in days -> the simulator's ``truth.parquet`` column that is the best possible
        prediction.
    registered_name
        Registered model name in the MLflow registry.
    btyd_baseline
        Which output of the BG/NBD (+ Gamma-Gamma) baseline predicts the task:
        ``p_no_purchase`` (1 - P(a purchase in the horizon)), ``expected_clv``, or None when
        BTYD models do not predict it.
    reason_for
        Next-best-action outcome -> the direction of the driver its reason cites (None: the
        strongest either way). A win-back cites what raises churn risk.
    monotone
        Whether the model takes the features' monotone directions (``Feature.churn_direction``).
    intended_use
        One paragraph for the model card.
    """

    name: Task
    kind: Literal["classification", "regression"]
    outputs: tuple[str, ...]
    eligibility: Eligibility
    horizon_field: str
    primary_metric: PrimaryMetric
    headline_metrics: tuple[str, ...]
    console_metrics: tuple[str, ...]
    scale: Scale
    strength_thresholds: tuple[float, float]
    oracle_columns: Mapping[int, str]
    registered_name: str
    btyd_baseline: Literal["p_no_purchase", "expected_clv"] | None
    reason_for: Mapping[Outcome, Direction | None]
    monotone: bool
    intended_use: str

    @property
    def prediction(self) -> str:
        """The output column that holds the prediction itself."""
        return self.outputs[0]

    def oracle_column(self, horizon_days: int) -> str | None:
        """Return the simulator's best-possible prediction at this horizon, if it has one."""
        return self.oracle_columns.get(horizon_days)


CLV_OUTPUTS = (
    "clv",
    "clv_p10",
    "clv_p90",
    "clv_median",
    "expected_transactions",
    "p_no_purchase",
    "transactions_p10",
    "transactions_median",
    "transactions_p90",
)
"""The CLV model's outputs: revenue's mean, P10, P90 and median, then the purchase days' mean,
P(no purchase day) and P10, median and P90 over the CLV horizon. A model that is not a
distribution (the ``lightgbm`` learner) answers NaN for the last six."""

_CLASSIFICATION_HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
_CLASSIFICATION_CONSOLE = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10")
_AUC_PRIMARY = PrimaryMetric("roc_auc", higher_is_better=True, tolerance=0.005, relative=False)

SPECS: Mapping[Task, TaskSpec] = MappingProxyType(
    {
        "next_stage": TaskSpec(
            name="next_stage",
            kind="classification",
            outputs=("next_stage_probability",),
            eligibility="below_last_stage",
            horizon_field="next_stage_days",
            primary_metric=_AUC_PRIMARY,
            headline_metrics=_CLASSIFICATION_HEADLINE,
            console_metrics=_CLASSIFICATION_CONSOLE,
            scale="log_odds",
            strength_thresholds=(0.15, 0.5),
            oracle_columns=MappingProxyType({30: "p_next_stage_30d"}),
            registered_name="lifecycle-next-stage",
            btyd_baseline=None,
            reason_for=MappingProxyType({"next_stage": None}),
            monotone=False,
            intended_use=(
                "Estimate the probability of each lifecycle stage a customer will be in at the "
                "end of the horizon after a cutoff."
            ),
        ),
        "churn": TaskSpec(
            name="churn",
            kind="classification",
            outputs=("churn_risk",),
            eligibility="has_purchase",
            horizon_field="churn_days",
            primary_metric=_AUC_PRIMARY,
            headline_metrics=_CLASSIFICATION_HEADLINE,
            console_metrics=_CLASSIFICATION_CONSOLE,
            scale="log_odds",
            strength_thresholds=(0.15, 0.5),
            oracle_columns=MappingProxyType({30: "p_churn_30d", 90: "p_churn_90d"}),
            registered_name="lifecycle-churn",
            btyd_baseline="p_no_purchase",
            reason_for=MappingProxyType({"retention": "up", "none": "down"}),
            monotone=True,
            intended_use=(
                "Rank customers by the probability that they churn within the horizon after a "
                "cutoff, to decide whom a retention action should reach first."
            ),
        ),
        "clv": TaskSpec(
            name="clv",
            kind="regression",
            outputs=CLV_OUTPUTS,
            eligibility="everyone",
            horizon_field="clv_days",
            primary_metric=PrimaryMetric(
                "mae", higher_is_better=False, tolerance=0.02, relative=True
            ),
            headline_metrics=("mae", "rmse", "normalized_gini", "spearman", "interval_coverage"),
            console_metrics=(
                "mae",
                "rmse",
                "spearman",
                "normalized_gini",
                "total_bias",
                "coverage_p10_p90",
            ),
            scale="log_value",
            strength_thresholds=(0.1, 0.4),
            oracle_columns=MappingProxyType(
                {
                    30: "expected_revenue_30d",
                    90: "expected_revenue_90d",
                    365: "expected_revenue_365d",
                }
            ),
            registered_name="lifecycle-clv",
            btyd_baseline="expected_clv",
            reason_for=MappingProxyType({"value": None}),
            monotone=False,
            intended_use=(
                "Estimate each customer's revenue over the horizon after a cutoff, with a "
                "prediction interval, to prioritise and budget customer actions."
            ),
        ),
    }
)
"""The specification of every task, by name."""

TASKS: tuple[Task, ...] = tuple(get_args(Task))
"""Every task, in the order they are trained and answered."""


def check_specs(specs: Mapping[Any, TaskSpec], names: tuple[str, ...]) -> None:
    """Raise when the specifications do not describe exactly ``names``, each consistently.

    Run at import on :data:`SPECS`; a test runs it on broken tables.

    Raises
    ------
    TypeError
        Naming the task and the fact that is missing or inconsistent.
    """
    missing = [t for t in names if t not in specs]
    if missing:
        raise TypeError(f"task(s) without a TaskSpec: {', '.join(missing)}")
    extra = [t for t in specs if t not in names]
    if extra:
        raise TypeError(f"TaskSpec(s) for unknown task(s): {', '.join(extra)}")
    outcomes: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.name != name:
            raise TypeError(f"the spec under {name!r} is named {spec.name!r}")
        if not spec.outputs or not spec.headline_metrics or not spec.registered_name:
            raise TypeError(f"task {name!r}: outputs, headline metrics and a name are required")
        low, high = spec.strength_thresholds
        if not 0 < low < high:
            raise TypeError(f"task {name!r}: strength thresholds must rise from above 0")
        for outcome in spec.reason_for:
            if outcome in outcomes:
                raise TypeError(
                    f"outcome {outcome!r} cites drivers of both {outcomes[outcome]} and {name}"
                )
            outcomes[outcome] = name
    if len({s.registered_name for s in specs.values()}) != len(specs):
        raise TypeError("two tasks share a registered model name")


check_specs(SPECS, TASKS)


def spec(task: str) -> TaskSpec:
    """Return the specification of a task.

    Raises
    ------
    ValueError
        For a name that is not a task, listing the tasks.

    Examples
    --------
    >>> spec("churn").outputs
    ('churn_risk',)
    """
    try:
        return SPECS[task]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}") from None


def task_of_model(registered_name: str) -> Task | None:
    """Return the task whose registered model has this name, or None."""
    return next((t for t, s in SPECS.items() if s.registered_name == registered_name), None)


REGISTERED_NAMES: Mapping[Task, str] = MappingProxyType(
    {t: s.registered_name for t, s in SPECS.items()}
)
"""Registered model name of each task."""

REASON_DRIVER: Mapping[Outcome, tuple[Task, Direction | None]] = MappingProxyType(
    {o: (t, d) for t, s in SPECS.items() for o, d in s.reason_for.items()}
)
"""Outcome of an action -> the task whose driver its reason cites, and the direction wanted."""


def eligible(task: Task, features: Mapping[str, npt.ArrayLike] | object) -> npt.NDArray[np.bool_]:
    """Return which rows of a feature frame a task predicts for.

    Parameters
    ----------
    task
        A task; its :attr:`TaskSpec.eligibility` decides.
    features
        Rows of :func:`lifecycle.features.build.build_features` (a DataFrame), or a mapping of its
        ``stage_code`` and ``n_purchases`` columns to arrays.

    Returns
    -------
    numpy.ndarray
        Boolean mask, one entry per row.

    Examples
    --------
    >>> eligible("churn", {"n_purchases": [0, 2], "stage_code": [1, 3]})
    array([False,  True])
    """
    rule = spec(task).eligibility
    purchases = np.asarray(features["n_purchases"])  # type: ignore[index]
    if rule == "below_last_stage":
        return np.asarray(features["stage_code"]) < LAST_STAGE_CODE  # type: ignore[index]
    if rule == "has_purchase":
        return purchases > 0
    return np.ones(purchases.shape[0], dtype=bool)
