"""A budgeted next-best-action plan, and its offline evaluation on randomised campaigns.

:func:`plan` turns per-customer predictions into a contact list a campaign tool can load: at
most one action per customer, chosen to maximise the expected incremental value net of cost
within a budget (a number of contacts, or money). Expected values are exactly those of
:mod:`lifecycle.models.nba` (its ranking is reused, not copied): with a measured uplift for the
action's offer, ``uplift * value of a purchase - cost``; else the catalog's assumed effect.
"Do nothing" is the answer only when no eligible action has a positive net value, and each such
customer gets a one-sentence reason in every language.

:func:`evaluate_policies` asks what a plan would have earned before anything is sent. The
campaign history is a randomised trial: at every send, targeted customers were split at random
into a control group and treated groups (one per offer), with known shares. A policy is applied
to the history (to each send's customers, as they were at the send, with uplift estimates
cross-fitted so that no row is scored by a model that saw it), and its value relative to
sending nothing is estimated by

- inverse propensity weighting (IPW): ``w * (1[treated with the policy's offer] * y / e_offer -
  1[control] * y / e_control) - cost`` per row the policy contacts, 0 elsewhere;
- doubly robust (DR): the same with the outcome models' predictions ``m`` as a baseline,
  ``w * (m_offer + 1[...] (y - m_offer) / e_offer - m_control - 1[control] (y - m_control) /
  e_control) - cost``, with cross-fitted arm models of the T-learner as ``m``.

The plan ranks by the uplift model's calibrated estimates (what serving and ``lifecycle plan``
use, :meth:`lifecycle.models.uplift.TwoModelUplift.predict_matrix`), each fold's model
calibrated on its own training rows only.

``e`` is the arm's share in the send (known by design, read from the send's rows), ``y`` the
purchase within the outcome window, ``w`` the value of a purchase for the chosen action
(:mod:`lifecycle.models.nba`: the stage value or the predicted CLV). Both estimators are means
over the history's rows; their intervals use the influence-function standard error clustered by
customer (a customer's sends are not independent). On simulated data the true value of every
policy is known too (:func:`true_purchase_uplift`), which is what the tests check the
estimates against.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.features.formatting import money
from lifecycle.features.glossary import LANGS, Lang, segment_name, stage_name, text
from lifecycle.features.io import replace_atomically
from lifecycle.models.nba import (
    ActionCatalog,
    _check_inputs,
    _expected_value,
    _rank,
    prediction_values,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

BudgetKind: TypeAlias = Literal["count", "money"]
Status: TypeAlias = Literal["contact", "over_budget", "no_gain", "no_eligible_action"]

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "stage",
    "segment",
    "next_stage_probability",
    "churn_risk",
    "clv",
)
"""Columns :func:`plan` needs (the population frame of :mod:`lifecycle.serving.population`)."""

CONTACT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "action",
    "name",
    "offer",
    "expected_value",
    "cost",
    "net_value",
    "effect",
    "effect_source",
    "stage",
    "segment",
)
"""Columns of a contact in the campaign tool's CSV (:meth:`Plan.write_csv`) and the API."""

HISTORY_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "campaign_id",
    "cutoff",
    "offer",
    "treated",
    "purchased",
    *CUSTOMER_COLUMNS[1:],
)
"""Columns of a campaign history for :func:`evaluate_policies` (one row per customer per send)."""

POLICIES: tuple[str, ...] = ("plan", "send_nothing", "random", "churn_risk", "clv", "oracle")
"""Policies :func:`evaluate_policies` compares (``oracle`` only with the true uplift)."""

_TEXT_COLUMNS = frozenset({"action", "offer", "outcome", "effect_source"})

_STATUS_REASON: dict[str, str] = {
    "no_eligible_action": "reason.plan_no_eligible",
    "no_gain": "reason.plan_no_gain",
    "over_budget": "reason.plan_over_budget",
}


@dataclass(frozen=True)
class Budget:
    """How much a plan may spend: a number of contacts, or money in the catalog's currency.

    Examples
    --------
    >>> Budget(500).kind, Budget(1200.0, "money").amount
    ('count', 1200.0)
    """

    amount: float
    kind: BudgetKind = "count"

    def __post_init__(self) -> None:
        if self.kind not in ("count", "money"):
            raise ValueError(f"budget kind must be 'count' or 'money', got {self.kind!r}")
        if not (math.isfinite(self.amount) and self.amount >= 0):
            raise ValueError(f"the budget must be a finite number >= 0, got {self.amount!r}")
        if self.kind == "count" and self.amount != int(self.amount):
            raise ValueError(f"a count budget must be a whole number, got {self.amount!r}")


def with_costs(catalog: ActionCatalog, costs: Mapping[str, float] | None) -> ActionCatalog:
    """Return the catalog with some actions' costs replaced.

    Parameters
    ----------
    catalog
        The action catalog.
    costs
        Action id -> cost per contact, in the catalog's currency.

    Returns
    -------
    ActionCatalog
        A copy; the other actions are unchanged.

    Raises
    ------
    ValueError
        For an unknown action id, the no-action, or a cost that is negative or not finite.

    Examples
    --------
    >>> from lifecycle.models.nba import load_catalog
    >>> with_costs(load_catalog(), {"win_back": 5}).actions[4].cost
    5.0
    """
    if not costs:
        return catalog
    ids = [a.id for a in catalog.actions]
    unknown = sorted(set(costs) - set(ids))
    if unknown:
        raise ValueError(
            f"unknown action(s) {', '.join(map(repr, unknown))} in the cost overrides; the "
            f"catalog has {', '.join(ids)}"
        )
    if catalog.no_action.id in costs:
        raise ValueError(f"{catalog.no_action.id!r} is the no-action: it has no cost to set")
    bad = [k for k, v in costs.items() if not (math.isfinite(float(v)) and float(v) >= 0)]
    if bad:
        raise ValueError(f"the cost of {', '.join(bad)} must be a finite number >= 0")
    actions = tuple(
        a.model_copy(update={"cost": float(costs[a.id])}) if a.id in costs else a
        for a in catalog.actions
    )
    return catalog.model_copy(update={"actions": actions})


def offer_actions(catalog: ActionCatalog, offers: Sequence[str]) -> ActionCatalog:
    """Return the catalog restricted to the no-action and actions whose offer is in ``offers``.

    Campaign history measures only actions with a campaign offer; a plan evaluated on it must
    choose among those.

    Examples
    --------
    >>> from lifecycle.models.nba import load_catalog
    >>> [a.id for a in offer_actions(load_catalog(), ["free_shipping"]).actions]
    ['no_action', 'second_purchase_offer']
    """
    keep = set(offers)
    actions = tuple(a for a in catalog.actions if a.outcome == "none" or a.offer in keep)
    return catalog.model_copy(update={"actions": actions})


def estimated_uplift(
    estimator: Any, x: FloatArray, columns: npt.NDArray[np.intp] | None = None
) -> pd.DataFrame:
    """Return an uplift model's estimates per offer for a feature matrix, as ``plan`` takes them.

    Parameters
    ----------
    estimator
        A fitted :class:`lifecycle.models.uplift.TwoModelUplift` (e.g. an engine's
        ``uplift.estimator``).
    x
        Feature rows (float64), e.g. an engine's lookup table ``x``.
    columns
        Positions of the estimator's features in ``x`` (None: ``x`` is in its order).

    Returns
    -------
    pandas.DataFrame
        One column per offer, one row per row of ``x``.
    """
    estimates = estimator.predict_matrix(x if columns is None else x[:, columns])
    return pd.DataFrame(estimates, dtype=np.float64)


def _check_frame(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {what} lack the column(s) {', '.join(missing)}")


def _uplift_rows(uplift: pd.DataFrame | None, n: int) -> list[dict[str, float]] | None:
    """Per-row mapping offer -> uplift (NaN entries dropped, so the assumed effect applies)."""
    if uplift is None:
        return None
    if len(uplift) != n:
        raise ValueError(f"the uplift has {len(uplift)} rows for {n} customers")
    values = uplift.to_numpy(dtype=np.float64)
    names = [str(c) for c in uplift.columns]
    return [
        {name: float(v) for name, v in zip(names, row, strict=True) if not math.isnan(v)}
        for row in values
    ]


def score_actions(
    customers: pd.DataFrame,
    catalog: ActionCatalog,
    *,
    uplift: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return each customer's best contact action (the no-action aside) and its value.

    The values are those of :func:`lifecycle.models.nba.recommend` (the same ranking): the
    best action may have a negative net value, and customers with no eligible contact action
    have ``action`` None.

    Parameters
    ----------
    customers
        One row per customer (or per customer and send) with :data:`CUSTOMER_COLUMNS` (the
        ``customer_id`` is not read).
    catalog
        The actions, with any cost overrides applied (:func:`with_costs`).
    uplift
        Measured uplift per campaign offer, one column per offer, one row per row of
        ``customers`` in the same order; NaN where not measured.

    Returns
    -------
    pandas.DataFrame
        On ``customers``' index: ``action``, ``offer``, ``outcome``, ``effect``,
        ``effect_source``, ``cost``, ``expected_value`` (incremental value before cost),
        ``net_value`` (after cost) and ``purchase_value`` (the value of one extra purchase,
        the ``w`` of the module docstring; NaN for an assumed effect).
    """
    _check_frame(customers, CUSTOMER_COLUMNS[1:], "customers")
    uplift_rows = _uplift_rows(uplift, len(customers))
    out: dict[str, list[Any]] = {
        k: []
        for k in (
            "action",
            "offer",
            "outcome",
            "effect",
            "effect_source",
            "cost",
            "expected_value",
            "net_value",
            "purchase_value",
        )
    }
    table = customers[list(CUSTOMER_COLUMNS[1:])].itertuples(index=False)
    for i, (stage, segment, p_next, churn, clv) in enumerate(table):
        _check_inputs(str(stage), str(segment), "en")
        values = prediction_values(
            {"next_stage_probability": p_next, "churn_risk": churn, "clv": clv}
        )
        measured = uplift_rows[i] if uplift_rows else None
        ranked = _rank(catalog, str(stage), str(segment), values, measured)
        best = next((s for s in ranked if s.action.outcome != "none"), None)
        if best is None:  # only the no-action applies
            for key, column in out.items():
                column.append(None if key in _TEXT_COLUMNS else math.nan)
            continue
        action = best.action
        per_purchase = (
            _expected_value(catalog, action, str(stage), 1.0, values, "estimated")
            if best.effect_source == "estimated"
            else None
        )
        out["action"].append(action.id)
        out["offer"].append(action.offer)
        out["outcome"].append(action.outcome)
        out["effect"].append(best.effect)
        out["effect_source"].append(best.effect_source)
        out["cost"].append(action.cost)
        out["expected_value"].append(best.expected_value + action.cost)
        out["net_value"].append(best.expected_value)
        out["purchase_value"].append(
            math.nan if per_purchase is None else per_purchase + action.cost
        )
    frame = pd.DataFrame(out, index=customers.index)
    for key in ("effect", "cost", "expected_value", "net_value", "purchase_value"):
        frame[key] = frame[key].astype(np.float64)
    return frame


def select(net_value: FloatArray, cost: FloatArray, budget: Budget | None) -> BoolArray:
    """Choose whom to contact: positive net values only, within the budget.

    A count budget takes the highest net values (ties: the earlier row). A money budget is a
    0/1 knapsack, solved greedily: rows in order of net value per unit of cost (free actions
    first), each taken if it still fits. With many small costs the greedy is close to optimal:
    it can lose at most the net value of one contact it skipped near the end. ``None`` contacts
    every row with a positive net value.

    Examples
    --------
    >>> select(np.array([5.0, -1.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0, 1.0]), Budget(2)).tolist()
    [True, False, False, True]
    >>> select(np.array([5.0, 4.0, 3.0]), np.array([5.0, 1.0, 1.0]), Budget(2, "money")).tolist()
    [False, True, True]
    """
    net = np.nan_to_num(np.asarray(net_value, dtype=np.float64), nan=-np.inf)
    chosen = net > 0
    if budget is None:
        return chosen
    rows = np.flatnonzero(chosen)
    if budget.kind == "count":
        order = rows[np.argsort(-net[rows], kind="stable")]
        keep = order[: int(budget.amount)]
    else:
        price = np.asarray(cost, dtype=np.float64)[rows]
        ratio = np.divide(net[rows], price, out=np.full(rows.size, np.inf), where=price > 0)
        order = np.argsort(-ratio, kind="stable")
        fits = np.zeros(rows.size, dtype=bool)
        left = float(budget.amount)
        for j in order:
            if price[j] <= left + 1e-9:
                fits[j] = True
                left -= float(price[j])
        keep = rows[fits]
    out = np.zeros(net.size, dtype=bool)
    out[keep] = True
    return out


def bootstrap_sum(
    values: FloatArray, *, interval: float, resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of a sum, resampling its terms with replacement.

    Examples
    --------
    >>> low, high = bootstrap_sum(np.ones(10), interval=0.9, resamples=100,
    ...                           rng=np.random.default_rng(0))
    >>> low, high
    (10.0, 10.0)
    """
    if values.size == 0:
        return 0.0, 0.0
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    sums = values[picks].sum(axis=1)
    tail = (1.0 - interval) / 2.0
    low, high = np.quantile(sums, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Plan:
    """A budgeted contact plan: who gets what, per-action totals and the whole plan's totals.

    Attributes
    ----------
    assignments
        One row per customer: ``customer_id``, ``stage``, ``segment``, ``action`` (the action
        to send, or the catalog's no-action), ``name``, ``offer``, ``outcome``, ``effect``,
        ``effect_source``, ``expected_value`` (incremental value before cost), ``cost``,
        ``net_value``, ``status`` (``contact``, ``over_budget``, ``no_gain``,
        ``no_eligible_action``), ``best_action`` (the best contact action, sent or not) and
        ``reason_en``/``reason_ko`` (why the customer is left alone; empty for a contact).
        Value columns describe ``best_action``, so an over-budget row shows what it missed.
    summary
        One row per action sent: ``action``, ``name``, ``customers``, ``cost``,
        ``expected_value``, ``net_value`` and ``net_low``/``net_high``, the interval of the
        net value.
    totals
        ``customers`` (all), ``contacts``, ``cost``, ``expected_value``, ``net_value``,
        ``net_low``, ``net_high``, ``budget``, ``budget_kind``, ``interval`` and the count of
        customers left alone per status.
    currency
        The catalog's currency.
    """

    assignments: pd.DataFrame
    summary: pd.DataFrame
    totals: dict[str, Any]
    currency: str

    def contacts(self) -> pd.DataFrame:
        """Return the customers to contact, highest net value first."""
        rows = self.assignments[self.assignments["status"] == "contact"]
        return rows.sort_values("net_value", ascending=False, kind="stable")

    def write_csv(self, path: str | Path, *, everyone: bool = False) -> Path:
        """Write the contacts (or ``everyone``) as CSV for a campaign tool, atomically.

        Columns: ``customer_id``, ``action``, ``name``, ``offer``, ``expected_value``,
        ``cost``, ``net_value``, ``effect``, ``effect_source``, ``stage``, ``segment``, and
        with ``everyone`` also ``status`` and the reasons. Amounts are exact (not rounded).
        """
        columns = list(CONTACT_COLUMNS)
        if everyone:
            table = self.assignments[[*columns, "status", "best_action", "reason_en", "reason_ko"]]
        else:
            table = self.contacts()[columns]
        target = Path(path)
        replace_atomically(target, lambda tmp: table.to_csv(tmp, index=False))
        return target

    def as_dict(self) -> dict[str, Any]:
        """Return the per-action summary and the totals as JSON types."""
        return {
            "currency": self.currency,
            "totals": {k: _plain(v) for k, v in self.totals.items()},
            "actions": [
                {k: _plain(v) for k, v in row.items()}
                for row in self.summary.to_dict(orient="records")
            ],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _reason(
    status: str,
    row: Mapping[str, Any],
    catalog: ActionCatalog,
    names: Mapping[str, Any],
    lang: Lang,
) -> str:
    """One sentence on why a customer is left alone, in ``lang`` ('' for a contact)."""
    if status == "contact":
        return ""
    currency = catalog.currency
    words: dict[str, str] = {
        "stage": stage_name(str(row["stage"]), lang),
        "segment": segment_name(str(row["segment"]), lang),
    }
    if status != "no_eligible_action":
        words |= {
            "action": str(names[row["best_action"]][lang]),
            "gain": money(float(row["expected_value"]), currency, lang),
            "cost": money(float(row["cost"]), currency, lang),
            "net": money(float(row["net_value"]), currency, lang),
        }
    return text("reason.end", lang, reason=text(_STATUS_REASON[status], lang, **words))


def plan(
    customers: pd.DataFrame,
    catalog: ActionCatalog,
    budget: Budget | None = None,
    *,
    uplift: pd.DataFrame | None = None,
    costs: Mapping[str, float] | None = None,
    interval: float = 0.9,
    resamples: int = 1000,
    seed: int = 0,
) -> Plan:
    """Choose at most one action per customer, maximising expected net value within a budget.

    Parameters
    ----------
    customers
        One row per customer with :data:`CUSTOMER_COLUMNS`, e.g. the ``customers`` frame of
        :func:`lifecycle.serving.population.build_population`.
    catalog
        The actions (:func:`lifecycle.models.nba.load_catalog`).
    budget
        Contacts or money to spend; None contacts everyone with a positive net value.
    uplift
        Measured uplift per campaign offer (one column per offer, rows in the order of
        ``customers``, e.g. :meth:`lifecycle.models.uplift.TwoModelUplift.predict_frame`);
        it replaces the catalog's assumed effect of the actions with that offer.
    costs
        Action id -> cost per contact, replacing the catalog's (:func:`with_costs`).
    interval
        Coverage of the net value intervals.
    resamples, seed
        Bootstrap resamples and seed of the intervals.

    Returns
    -------
    Plan
        The assignments, the per-action summary and the totals. The interval of a net value
        is a bootstrap over the customers it sums (resampling their per-customer estimates):
        it says how much the total depends on the particular customers, not how wrong the
        uplift estimates may be; :func:`evaluate_policies` checks those against outcomes.

    Raises
    ------
    ValueError
        For a missing column, a repeated customer, an unknown stage or segment, an uplift
        frame of the wrong length, or a bad cost override.

    Examples
    --------
    >>> from lifecycle.models.nba import load_catalog
    >>> customers = pd.DataFrame({"customer_id": ["a", "b"], "stage": ["retention"] * 2,
    ...     "segment": ["At risk", "Champions"], "next_stage_probability": [0.1, 0.1],
    ...     "churn_risk": [0.8, 0.1], "clv": [500.0, 900.0]})
    >>> result = plan(customers, load_catalog(), Budget(1))
    >>> result.assignments[["customer_id", "action", "status"]].values.tolist()
    [['a', 'win_back', 'contact'], ['b', 'no_action', 'over_budget']]
    """
    _check_frame(customers, CUSTOMER_COLUMNS, "customers")
    if customers["customer_id"].duplicated().any():
        repeated = customers.loc[customers["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise ValueError(f"customer {repeated!r} appears more than once")
    if not 0 < interval < 1:
        raise ValueError(f"interval must be between 0 and 1, got {interval}")
    catalog = with_costs(catalog, costs)
    frame = customers.reset_index(drop=True)
    best = score_actions(frame, catalog, uplift=uplift)
    chosen = select(best["net_value"].to_numpy(), best["cost"].to_numpy(), budget)
    status = np.where(
        chosen,
        "contact",
        np.where(
            best["action"].isna(),
            "no_eligible_action",
            np.where(best["net_value"].to_numpy() > 0, "over_budget", "no_gain"),
        ),
    )
    none = catalog.no_action
    names = {a.id: a.names for a in catalog.actions}
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str),
            "stage": frame["stage"].astype(str),
            "segment": frame["segment"].astype(str),
            "action": np.where(chosen, best["action"].fillna(none.id), none.id),
        }
    )
    out["name"] = [names[a]["en"] for a in out["action"]]
    for key in ("offer", "outcome", "effect", "effect_source", "expected_value", "cost"):
        out[key] = best[key]
    out["net_value"] = best["net_value"]
    out["status"] = status
    out["best_action"] = best["action"]
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in out.to_dict(orient="records")
    ]
    for lang in LANGS:
        out[f"reason_{lang}"] = [
            _reason(str(s), r, catalog, names, lang) for s, r in zip(status, records, strict=True)
        ]
    rng = np.random.default_rng(seed)
    contacts = out[chosen]
    summary_rows = []
    for action in catalog.actions:
        rows = contacts[contacts["action"] == action.id]
        if rows.empty:
            continue
        low, high = bootstrap_sum(
            rows["net_value"].to_numpy(), interval=interval, resamples=resamples, rng=rng
        )
        summary_rows.append(
            {
                "action": action.id,
                "name": action.names["en"],
                "customers": len(rows),
                "cost": float(rows["cost"].sum()),
                "expected_value": float(rows["expected_value"].sum()),
                "net_value": float(rows["net_value"].sum()),
                "net_low": low,
                "net_high": high,
            }
        )
    summary = pd.DataFrame(
        summary_rows,
        columns=[
            "action",
            "name",
            "customers",
            "cost",
            "expected_value",
            "net_value",
            "net_low",
            "net_high",
        ],
    )
    low, high = bootstrap_sum(
        contacts["net_value"].to_numpy(), interval=interval, resamples=resamples, rng=rng
    )
    left_alone = pd.Series(status[~chosen]).value_counts()
    totals: dict[str, Any] = {
        "customers": len(out),
        "contacts": int(chosen.sum()),
        "cost": float(contacts["cost"].sum()),
        "expected_value": float(contacts["expected_value"].sum()),
        "net_value": float(contacts["net_value"].sum()),
        "net_low": low,
        "net_high": high,
        "interval": interval,
        "budget": None if budget is None else budget.amount,
        "budget_kind": None if budget is None else budget.kind,
        **{s: int(left_alone.get(s, 0)) for s in ("over_budget", "no_gain", "no_eligible_action")},
    }
    return Plan(out, summary, totals, catalog.currency)


# --------------------------------------------------------------------------- offline evaluation


@dataclass(frozen=True)
class OutcomeModels:
    """Cross-fitted predictions for each history row, from models that never saw the row.

    Attributes
    ----------
    uplift
        Estimated uplift per offer (calibrated, what the plan would have used), one column
        per offer.
    control
        ``P(purchase | control)`` per row (the mean of the offers' control-arm models).
    treated
        ``P(purchase | treated with the offer)`` per row, one column per offer.
    """

    uplift: pd.DataFrame
    control: FloatArray
    treated: pd.DataFrame


def cross_fit(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    folds: int = 2,
    seed: int = 0,
    num_boost_round: int = 200,
    min_arm_rows: int = 200,
    threads: int = 1,
) -> OutcomeModels:
    """Fit the T-learner on all folds but one and predict the held-out fold, for every fold.

    Parameters
    ----------
    frame
        Rows of :func:`lifecycle.models.uplift.campaign_frame`.
    feature_names
        The feature columns the learner uses.
    folds
        Folds, split by customer (all of a customer's sends in one fold).
    seed, num_boost_round, min_arm_rows, threads
        Passed to :class:`lifecycle.models.uplift.TwoModelUplift`.

    Returns
    -------
    OutcomeModels
        Out-of-fold uplift (calibrated within each fold's training rows, as
        :meth:`lifecycle.models.uplift.TwoModelUplift.predict_matrix` serves it) and arm
        probabilities; NaN for an offer a fold could not fit.
    """
    from lifecycle.models.lgbm import matrix
    from lifecycle.models.uplift import TwoModelUplift

    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
    offers = sorted(frame["offer"].astype(str).unique())
    codes, uniques = pd.factorize(frame["customer_id"].astype(str), sort=True)
    fold = np.random.default_rng(seed).integers(0, folds, size=len(uniques))[codes]
    x = matrix(frame, list(feature_names))
    uplift = np.full((len(frame), len(offers)), np.nan)
    treated = np.full((len(frame), len(offers)), np.nan)
    control = np.full((len(frame), len(offers)), np.nan)
    for k in range(folds):
        train, test = fold != k, fold == k
        model = TwoModelUplift(
            feature_names,
            seed=seed,
            threads=threads,
            num_boost_round=num_boost_round,
            min_arm_rows=min_arm_rows,
        ).fit(frame[train])
        estimates = model.predict_matrix(x[test])
        for j, offer in enumerate(offers):
            if offer not in model.boosters_:
                continue
            treated_model, control_model = model.boosters_[offer]
            uplift[test, j] = estimates[offer]
            treated[test, j] = treated_model.predict(x[test])
            control[test, j] = control_model.predict(x[test])
    with warnings.catch_warnings():  # a row whose fold fitted no offer stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        control_mean = np.nanmean(control, axis=1) if offers else np.full(len(frame), np.nan)
    return OutcomeModels(
        uplift=pd.DataFrame(uplift, columns=offers, index=frame.index),
        control=np.asarray(control_mean, dtype=np.float64),
        treated=pd.DataFrame(treated, columns=offers, index=frame.index),
    )


def true_purchase_uplift(history: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Return the simulator's true uplift of every offer on the chance of a purchase at each send.

    The simulator treats by multiplying a customer's purchase rate ``lam`` over the 30-day step
    by ``1 + u`` (``u`` = the customer's sensitivity times the offer's strength,
    ``campaigns.parquet``'s ``true_uplift``), so the chance of at least one purchase rises from
    ``exp(-lam)`` to ``exp(-lam (1 + u))``. ``lam`` is recovered from ``truth.parquet``'s chance
    of no purchase in the step at the send, which averages over the step's own random campaign
    (targeted with probability ``q``, then a random offer): ``(1 - q) exp(-lam) + q mean_o
    exp(-lam (1 + u_o))``, solved by bisection.

    Parameters
    ----------
    history
        Rows with ``customer_id``, ``cutoff`` (the send), ``offer`` and ``true_uplift``.
    truth
        The simulator's ``truth.parquet`` (``customer_id``, ``as_of``, ``stage``,
        ``p_churn_30d``, ``p_next_stage_30d``).

    Returns
    -------
    pandas.DataFrame
        On ``history``'s index, one column per simulator offer: the true increase in the
        chance of a purchase within the 30 days after the send.

    Raises
    ------
    ValueError
        When a history row has no truth at its send.
    """
    from lifecycle.features.simulate import (
        _OFFER_STRENGTH,  # the simulator's offer strengths: its truth, read where it is defined
        CAMPAIGN_TARGETING_PROBABILITY,
        CAMPAIGN_TREATMENT_PROBABILITY,
        OFFERS,
    )

    _check_frame(history, ["customer_id", "cutoff", "offer", "true_uplift"], "history")
    keys = pd.DataFrame(
        {
            "customer_id": history["customer_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(history["cutoff"], utc=True).astype("datetime64[us, UTC]"),
        }
    )
    table = truth[["customer_id", "as_of", "stage", "p_churn_30d", "p_next_stage_30d"]].copy()
    table["customer_id"] = table["customer_id"].astype(str)
    table["as_of"] = pd.to_datetime(table["as_of"], utc=True).astype("datetime64[us, UTC]")
    found = keys.merge(table, on=["customer_id", "as_of"], how="left", validate="many_to_one")
    no_purchase = found["p_churn_30d"].to_numpy(dtype=np.float64, na_value=np.nan)
    first = found["stage"].eq("acquisition").to_numpy()
    no_purchase = np.where(
        np.isnan(no_purchase) & first,
        1.0 - found["p_next_stage_30d"].to_numpy(dtype=np.float64, na_value=np.nan),
        no_purchase,
    )
    if np.isnan(no_purchase).any():
        bad = found.loc[np.isnan(no_purchase), ["customer_id", "as_of"]].iloc[0]
        raise ValueError(
            f"the truth has no chance of a purchase for {bad['customer_id']} at {bad['as_of']}"
        )
    strength = dict(zip(OFFERS, _OFFER_STRENGTH, strict=True))
    offer = history["offer"].astype(str).to_numpy()
    unknown = sorted(set(offer) - set(OFFERS))
    if unknown:
        raise ValueError(f"offer(s) {', '.join(unknown)} are not the simulator's")
    sensitivity = history["true_uplift"].to_numpy(dtype=np.float64) / np.array(
        [strength[o] for o in offer]
    )
    u = np.maximum(sensitivity[:, None] * np.asarray(_OFFER_STRENGTH)[None, :], -0.8)
    q = CAMPAIGN_TARGETING_PROBABILITY * CAMPAIGN_TREATMENT_PROBABILITY

    def marginal(lam: FloatArray) -> FloatArray:
        boosted = np.exp(-lam[:, None] * (1.0 + u)).mean(axis=1)
        return np.asarray((1.0 - q) * np.exp(-lam) + q * boosted, dtype=np.float64)

    target = np.clip(no_purchase, 1e-12, 1.0)
    lo, hi = np.zeros(len(target)), np.full(len(target), 60.0)
    for _ in range(80):  # marginal() falls as lam grows
        mid = (lo + hi) / 2.0
        above = marginal(mid) > target
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    lam = (lo + hi) / 2.0
    effect = np.exp(-lam)[:, None] - np.exp(-lam[:, None] * (1.0 + u))
    return pd.DataFrame(effect, columns=list(OFFERS), index=history.index)


@dataclass(frozen=True)
class Evaluation:
    """Estimated (and, on simulated data, true) value of each policy on the campaign history.

    Attributes
    ----------
    table
        One row per policy: ``policy``, ``contacts`` (share of the history's rows contacted),
        and for ``purchases`` (incremental purchases per customer) and ``value`` (incremental
        value net of cost per customer, in currency): ``ipw_*``, ``dr_*`` with ``*_low`` and
        ``*_high`` bounds, and ``true_*`` (NaN without the truth).
    rows, customers, sends
        Size of the history evaluated.
    share
        Share of each send's customers a budgeted policy contacts.
    interval
        Coverage of the intervals.
    currency
        Currency of the values.
    """

    table: pd.DataFrame
    rows: int
    customers: int
    sends: int
    share: float
    interval: float
    currency: str
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_send(self) -> float:
        """Mean customers per send: a per-customer value times this is a send's total."""
        return self.rows / self.sends if self.sends else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return JSON types: the sizes and one record per policy."""
        return {
            "rows": self.rows,
            "customers": self.customers,
            "sends": self.sends,
            "share": self.share,
            "interval": self.interval,
            "currency": self.currency,
            "rows_per_send": self.rows_per_send,
            "notes": list(self.notes),
            "policies": [
                {k: _plain(v) for k, v in row.items()}
                for row in self.table.to_dict(orient="records")
            ],
        }


@dataclass(frozen=True)
class _Choice:
    """A policy on the history: each row's offer (None: not contacted), value per purchase, cost."""

    offer: npt.NDArray[np.object_]
    weight: FloatArray
    cost: FloatArray


def _per_send(
    send: npt.NDArray[Any], share: float, pick: Callable[[npt.NDArray[np.intp], int], Any]
) -> BoolArray:
    """Apply ``pick(rows, k)`` to each send's rows with ``k = round(share * rows)``."""
    chosen = np.zeros(send.size, dtype=bool)
    for value in pd.unique(send):
        rows = np.flatnonzero(send == value)
        k = round(share * rows.size)
        if k > 0:
            chosen[np.asarray(pick(rows, k), dtype=np.intp)] = True
    return chosen


def _top(score: FloatArray, allowed: BoolArray) -> Callable[[npt.NDArray[np.intp], int], Any]:
    """Return a picker taking the highest scores among allowed rows (ties: the earlier row)."""

    def pick(rows: npt.NDArray[np.intp], k: int) -> npt.NDArray[np.intp]:
        rows = rows[allowed[rows]]
        order = np.argsort(-np.nan_to_num(score[rows], nan=-np.inf), kind="stable")
        return rows[order[:k]]

    return pick


def _planned(best: pd.DataFrame, allowed: BoolArray) -> Callable[[npt.NDArray[np.intp], int], Any]:
    """Return a picker choosing as :func:`plan` does with a count budget (:func:`select`)."""
    net = np.where(allowed, best["net_value"].to_numpy(), np.nan)
    cost = best["cost"].to_numpy()

    def pick(rows: npt.NDArray[np.intp], k: int) -> npt.NDArray[np.intp]:
        return rows[select(net[rows], cost[rows], Budget(k))]

    return pick


def _choice(best: pd.DataFrame, chosen: BoolArray) -> _Choice:
    offer = best["offer"].to_numpy(dtype=object).copy()
    offer[~chosen] = None
    return _Choice(
        offer=offer,
        weight=np.where(chosen, best["purchase_value"].to_numpy(), 0.0),
        cost=np.where(chosen, best["cost"].to_numpy(), 0.0),
    )


def _estimate(
    contributions: FloatArray, customer: npt.NDArray[np.intp], z: float
) -> tuple[float, float, float]:
    """Mean of per-row contributions with a customer-clustered normal interval."""
    n = contributions.size
    mean = float(contributions.mean())
    totals = np.bincount(customer, weights=contributions)
    sizes = np.bincount(customer)
    groups = totals.size
    resid = totals - sizes * mean
    var = groups / max(groups - 1, 1) * float((resid**2).sum()) / n**2
    se = math.sqrt(var)
    return mean, mean - z * se, mean + z * se


def evaluate_policies(
    history: pd.DataFrame,
    catalog: ActionCatalog,
    outcome_models: OutcomeModels,
    *,
    share: float = 0.1,
    costs: Mapping[str, float] | None = None,
    true_uplift: pd.DataFrame | None = None,
    targets: Mapping[str, npt.ArrayLike] | None = None,
    interval: float = 0.9,
    seed: int = 0,
) -> Evaluation:
    """Estimate what each policy would have earned on randomised campaign history.

    Every budgeted policy contacts ``share`` of each send's customers (rounded), with the
    customer's best measured action by estimated net value; they differ in whom they pick:

    - ``plan``: the highest estimated net value (positive only, so possibly fewer);
    - ``send_nothing``: nobody (its value is 0 by definition; a check of the estimators);
    - ``random``: customers drawn at random among those with a measured action;
    - ``churn_risk``, ``clv``: the highest churn risk, the highest CLV, among the same;
    - ``oracle`` (with ``true_uplift``): the plan computed with the true uplift.

    Parameters
    ----------
    history
        One row per customer per send with :data:`HISTORY_COLUMNS`: the campaign frame of
        :func:`lifecycle.models.uplift.campaign_frame` (``rfm_segment`` renamed ``segment``)
        with each row's predictions at the send.
    catalog
        The action catalog; only actions whose offer appears in the history are used.
    outcome_models
        Cross-fitted predictions for the rows (:func:`cross_fit`).
    share
        Share of each send's customers a budgeted policy contacts, in (0, 1].
    costs
        Action cost overrides (:func:`with_costs`).
    true_uplift
        The true uplift per offer and row (:func:`true_purchase_uplift`), on simulated data.
    targets
        More policies to evaluate, by name: a boolean per history row, True where the policy
        contacts the customer (with the customer's best measured action, as the heuristics;
        rows without one are not contacted).
    interval
        Coverage of the intervals.
    seed
        Seed of the random policy.

    Returns
    -------
    Evaluation
        One row per policy of :data:`POLICIES` (``oracle`` only with the truth), then one per
        entry of ``targets``.

    Raises
    ------
    ValueError
        For a missing column, a share outside (0, 1], a send without a control or treated
        row, or predictions whose length does not match.
    """
    _check_frame(history, HISTORY_COLUMNS, "campaign history")
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if len(outcome_models.uplift) != len(history):
        raise ValueError(
            f"the outcome models cover {len(outcome_models.uplift)} rows, "
            f"the history {len(history)}"
        )
    frame = history.reset_index(drop=True)
    offers = sorted(frame["offer"].astype(str).unique())
    measured = offer_actions(with_costs(catalog, costs), offers)
    notes = [
        f"measured actions: {', '.join(a.id for a in measured.actions if a.outcome != 'none')}"
    ]
    send = frame["cutoff"].astype("int64").to_numpy()
    offer = frame["offer"].astype(str).to_numpy()
    treated = frame["treated"].to_numpy(dtype=bool)
    y = frame["purchased"].to_numpy(dtype=np.float64)
    customer, uniques = pd.factorize(frame["customer_id"].astype(str))
    # The known design: each arm's share among the send's targeted customers.
    by_send = pd.DataFrame({"send": send, "control": ~treated})
    for o in offers:
        by_send[o] = treated & (offer == o)
    shares = by_send.groupby("send").transform("mean")
    e_control = shares["control"].to_numpy()
    if (e_control <= 0).any() or (e_control >= 1).any():
        raise ValueError("every send needs both a control and a treated group")

    uplift = outcome_models.uplift.reset_index(drop=True)
    best = score_actions(frame, measured, uplift=uplift)
    measurable = best["action"].notna().to_numpy() & best["purchase_value"].notna().to_numpy()
    rng = np.random.default_rng(seed)

    def random_pick(rows: npt.NDArray[np.intp], k: int) -> npt.NDArray[np.intp]:
        rows = rows[measurable[rows]]
        return rng.permutation(rows)[:k]

    choices: dict[str, _Choice] = {
        "plan": _choice(best, _per_send(send, share, _planned(best, measurable))),
        "send_nothing": _choice(best, np.zeros(len(frame), dtype=bool)),
        "random": _choice(best, _per_send(send, share, random_pick)),
        "churn_risk": _choice(
            best,
            _per_send(send, share, _top(frame["churn_risk"].to_numpy(np.float64), measurable)),
        ),
        "clv": _choice(
            best, _per_send(send, share, _top(frame["clv"].to_numpy(np.float64), measurable))
        ),
    }
    truth = None
    if true_uplift is not None:
        truth = true_uplift.reset_index(drop=True)
        oracle_best = score_actions(frame, measured, uplift=truth[offers])
        ok = oracle_best["purchase_value"].notna().to_numpy()
        chosen = _per_send(send, share, _planned(oracle_best, ok))
        choices["oracle"] = _choice(oracle_best, chosen)

    for name, mask in (targets or {}).items():
        wanted = np.asarray(mask, dtype=bool)
        if wanted.shape != (len(frame),):
            raise ValueError(f"targets {name!r} has {wanted.size} entries for {len(frame)} rows")
        if name in choices:
            raise ValueError(f"targets {name!r} has the name of a built-in policy")
        choices[name] = _choice(best, wanted & measurable)

    z = NormalDist().inv_cdf(0.5 + interval / 2.0)
    m_control = np.nan_to_num(outcome_models.control, nan=0.0)
    m_treated = outcome_models.treated.reset_index(drop=True)
    records = []
    for name, choice in choices.items():
        contacted = np.array([o is not None for o in choice.offer], dtype=bool)
        match = contacted & treated & (offer == choice.offer.astype(str))
        e_offer = np.ones(len(frame))
        m_offer = np.zeros(len(frame))
        for o in offers:
            rows = contacted & (choice.offer == o)
            e_offer[rows] = shares[o].to_numpy()[rows]
            m_offer[rows] = np.nan_to_num(m_treated[o].to_numpy()[rows], nan=0.0)
        ipw_gain = np.where(match, y / e_offer, 0.0) - np.where(
            contacted & ~treated, y / e_control, 0.0
        )
        dr_treat = m_offer + np.where(match, (y - m_offer) / e_offer, 0.0)
        dr_control = m_control + np.where(~treated, (y - m_control) / e_control, 0.0)
        dr_gain = np.where(contacted, dr_treat - dr_control, 0.0)
        record: dict[str, Any] = {"policy": name, "contacts": float(contacted.mean())}
        for est, gain in (("ipw", ipw_gain), ("dr", dr_gain)):
            for unit, values in (
                ("purchases", gain),
                ("value", choice.weight * gain - choice.cost),
            ):
                mean, low, high = _estimate(np.where(contacted, values, 0.0), customer, z)
                record |= {f"{est}_{unit}": mean, f"{est}_{unit}_low": low}
                record[f"{est}_{unit}_high"] = high
        if truth is not None:
            true_gain = np.zeros(len(frame))
            for o in offers:
                rows = contacted & (choice.offer == o)
                true_gain[rows] = truth[o].to_numpy()[rows]
            record["true_purchases"] = float(true_gain.mean())
            record["true_value"] = float(
                np.where(contacted, choice.weight * true_gain - choice.cost, 0.0).mean()
            )
        else:
            record["true_purchases"] = math.nan
            record["true_value"] = math.nan
        records.append(record)
    return Evaluation(
        table=pd.DataFrame(records),
        rows=len(frame),
        customers=len(uniques),
        sends=int(pd.unique(send).size),
        share=share,
        interval=interval,
        currency=catalog.currency,
        notes=notes,
    )


def campaign_history(
    frame: pd.DataFrame,
    models: Mapping[Any, Any],
    feature_names: Sequence[str],
    *,
    threads: int = 1,
) -> pd.DataFrame:
    """Add each send's predictions to the campaign frame: the history policies are run on.

    Parameters
    ----------
    frame
        Rows of :func:`lifecycle.models.uplift.campaign_frame` (features as of each send).
    models
        Task -> fitted model with its feature positions in ``feature_names`` (a
        :class:`lifecycle.models.scoring.Scorer`: the served models of an engine, or
        :func:`lifecycle.models.scoring.place` over champions).
    feature_names
        The feature list the models' positions refer to.
    threads
        LightGBM threads.

    Returns
    -------
    pandas.DataFrame
        ``frame`` with ``segment`` (the RFM segment), ``next_stage_probability``,
        ``churn_risk`` and ``clv`` as the models predict them at the send (NaN where a task
        does not apply), and ``clv_at_risk``.
    """
    from lifecycle.models.lgbm import matrix
    from lifecycle.models.scoring import eligibility, predict_outputs

    x = matrix(frame, list(feature_names))
    masks = eligibility(x, feature_names, list(models))
    outputs = predict_outputs(models, x, masks, threads=threads)
    missing = [c for c in ("next_stage_probability", "churn_risk", "clv") if c not in outputs]
    if missing:
        raise ValueError(f"the models do not predict {', '.join(missing)}")
    out = frame.rename(columns={"rfm_segment": "segment"})
    for name in ("next_stage_probability", "churn_risk", "clv"):
        out[name] = outputs[name]
    out["clv_at_risk"] = out["clv"] * out["churn_risk"].fillna(0.0)
    return out


def offline_evaluation(
    history: pd.DataFrame,
    catalog: ActionCatalog,
    uplift_features: Sequence[str],
    *,
    share: float = 0.1,
    costs: Mapping[str, float] | None = None,
    truth: pd.DataFrame | None = None,
    folds: int = 2,
    num_boost_round: int = 200,
    interval: float = 0.9,
    seed: int = 0,
    threads: int = 1,
) -> Evaluation:
    """Cross-fit the uplift learner on the history and evaluate every policy on it.

    :func:`cross_fit` then :func:`evaluate_policies`; with ``truth`` (the simulator's
    ``truth.parquet``) and a ``true_uplift`` column in ``history``, also the oracle and the
    true values (:func:`true_purchase_uplift`).

    Parameters
    ----------
    history
        :func:`campaign_history` rows (with ``true_uplift`` on simulated data).
    catalog
        The action catalog.
    uplift_features
        Features of the uplift learner (the registered model's ``feature_names``).
    share, costs, interval, seed
        As :func:`evaluate_policies`.
    truth
        The simulator's truth table, for the true values; None on real data.
    folds, num_boost_round, threads
        As :func:`cross_fit`.

    Returns
    -------
    Evaluation
        One row per policy.
    """
    models = cross_fit(
        history,
        uplift_features,
        folds=folds,
        seed=seed,
        num_boost_round=num_boost_round,
        threads=threads,
    )
    true_uplift = None
    if truth is not None:
        if "true_uplift" not in history.columns:
            raise ValueError("the true values need the campaigns' true_uplift column")
        true_uplift = true_purchase_uplift(history, truth)
    return evaluate_policies(
        history,
        catalog,
        models,
        share=share,
        costs=costs,
        true_uplift=true_uplift,
        interval=interval,
        seed=seed,
    )


def attach_true_uplift(history: pd.DataFrame, campaigns: pd.DataFrame) -> pd.DataFrame:
    """Return ``history`` with the campaigns' ``true_uplift`` of each row (simulated data).

    Raises
    ------
    ValueError
        When the campaigns have no ``true_uplift`` column.
    """
    if "true_uplift" not in campaigns.columns:
        raise ValueError("the campaigns have no true_uplift column (only simulated ones do)")
    key = pd.DataFrame(
        {
            "customer_id": campaigns["customer_id"].astype(str).to_numpy(),
            "campaign_id": campaigns["campaign_id"].astype(str).to_numpy(),
            "true_uplift": campaigns["true_uplift"].to_numpy(dtype=np.float64),
        }
    )
    out = history.drop(columns=["true_uplift"], errors="ignore")
    return out.merge(key, on=["customer_id", "campaign_id"], how="left", validate="many_to_one")


__all__ = [
    "CUSTOMER_COLUMNS",
    "HISTORY_COLUMNS",
    "POLICIES",
    "Budget",
    "Evaluation",
    "OutcomeModels",
    "Plan",
    "attach_true_uplift",
    "bootstrap_sum",
    "campaign_history",
    "cross_fit",
    "estimated_uplift",
    "evaluate_policies",
    "offer_actions",
    "offline_evaluation",
    "plan",
    "score_actions",
    "select",
    "true_purchase_uplift",
    "with_costs",
]
