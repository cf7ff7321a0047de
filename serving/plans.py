"""Budgeted plans for the page (``/planner``, ``/plan.csv``) and the API (``POST /plan``).

Both plan through :func:`lifecycle.serving.population.plan_population`, the same path as
``lifecycle plan``, over the population the page already holds, so the page, the API and the
command answer alike for the same engine, budget and costs. A plan is kept per engine, budget
and costs (:class:`Plans`): planning the test world's 2,418 customers took 0.17 s on one
core and 19,344 took 0.8 s (a Python loop per customer ranks the actions), so a repeated
budget, the page's CSV after its table, and the API's repeated calls answer from the kept
plan.

The offline evaluation shown beside a plan is the one the uplift model's training run logged
(``policy_evaluation.json``, :func:`lifecycle.training.uplift.log_policy_evaluation`), read
once per served uplift version from the registry (:meth:`Plans.evaluation`).
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifecycle.models.policy import CONTACT_COLUMNS, Budget, Plan
from lifecycle.serving.errors import RequestError
from lifecycle.serving.population import Population, plan_population
from lifecycle.serving.schemas import (
    PlanRequest,
    PlanResponse,
)

log = logging.getLogger("lifecycle.serving")

EVALUATION_ARTIFACT = "policy_evaluation.json"
"""The uplift run's offline evaluation of the plan and the heuristics."""

PLANS_KEPT = 32
"""Plans a worker keeps (the latest asked for): each holds one row per customer."""

_Key = tuple[int, float, str, tuple[tuple[str, float], ...]]


def cost_problems(catalog: Any, costs: Mapping[str, float] | None) -> list[tuple[str, str]]:
    """Return ``(field, message)`` for each cost override the catalog cannot take.

    Examples
    --------
    >>> from lifecycle.models.nba import load_catalog
    >>> cost_problems(load_catalog(), {"win_back": 1.0, "no_action": 0.0, "nope": 2.0})
    [('costs.no_action', 'the no-action has no cost'), ('costs.nope', 'unknown action')]
    """
    ids = {a.id for a in catalog.actions}
    problems = []
    for action in sorted(costs or {}):
        if action == catalog.no_action.id:
            problems.append((f"costs.{action}", "the no-action has no cost"))
        elif action not in ids:
            problems.append((f"costs.{action}", "unknown action"))
    return problems


def costed_actions(catalog: Any) -> list[str]:
    """Return the ids of the actions whose cost a plan may override (all but the no-action)."""
    return [a.id for a in catalog.actions if a.id != catalog.no_action.id]


class EvaluationUnreadable(RuntimeError):
    """The registry could not be read for the uplift run's offline evaluation."""


class Plans:
    """The plans asked for lately, per engine, budget and costs; and each engine's evaluation.

    Thread-safe (the page's views run in threads). A plan is made outside the lock: two
    simultaneous first asks for the same plan both make it, and the second is kept.
    """

    def __init__(self, size: int = PLANS_KEPT) -> None:
        self.size = size
        self._plans: OrderedDict[_Key, tuple[Population, Plan]] = OrderedDict()
        self._evaluations: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def plan(
        self, population: Population, budget: Budget, costs: Mapping[str, float] | None = None
    ) -> Plan:
        """Return the plan of ``population`` under ``budget`` and ``costs``, kept or made now.

        Raises
        ------
        ValueError
            For a cost override the catalog does not take (:func:`cost_problems`).
        """
        key: _Key = (
            id(population),
            float(budget.amount),
            budget.kind,
            tuple(sorted((k, float(v)) for k, v in (costs or {}).items())),
        )
        with self._lock:
            kept = self._plans.get(key)
            if kept is not None and kept[0] is population:  # the id of a live population
                self._plans.move_to_end(key)
                return kept[1]
        made = plan_population(population, budget, costs)
        with self._lock:
            self._plans[key] = (population, made)
            self._plans.move_to_end(key)
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return made

    def evaluation(self, engine: Any, tracking_uri: str | None) -> dict[str, Any] | None:
        """Return the offline evaluation logged by the run of ``engine``'s uplift model.

        None when the engine has no uplift model or its run logged none (an older run, or
        one without champion models to evaluate with).

        Raises
        ------
        EvaluationUnreadable
            When the registry cannot be read (logged; read again on the next call).
        """
        uplift = getattr(engine, "uplift", None)
        if uplift is None:
            return None
        key = (str(tracking_uri), uplift.name, uplift.version)
        with self._lock:
            if key in self._evaluations:
                return self._evaluations[key]
        try:
            found = read_evaluation(tracking_uri, uplift.name, uplift.version)
        except Exception as exc:  # the registry's errors vary by store (HTTP, SQL, files)
            log.warning("the offline evaluation of %s v%s: %s", uplift.name, uplift.version, exc)
            raise EvaluationUnreadable(str(exc)) from exc
        with self._lock:
            self._evaluations[key] = found
        return found


def read_evaluation(tracking_uri: str | None, name: str, version: str) -> dict[str, Any] | None:
    """Return the ``policy_evaluation.json`` of a registered model version's run, or None.

    Parameters
    ----------
    tracking_uri
        The MLflow store (None: MLflow's default).
    name, version
        The registered uplift model version.

    Returns
    -------
    dict or None
        :meth:`lifecycle.models.policy.Evaluation.as_dict` as logged; None when the run has
        no such artifact.
    """
    import json

    from lifecycle.models.store import connect

    client = connect(tracking_uri)
    run_id = client.get_model_version(name, version).run_id
    if not run_id or EVALUATION_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, EVALUATION_ARTIFACT, folder)
        found: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return found


def plan_answer(plan: Plan, population: Population, request: PlanRequest) -> PlanResponse:
    """Shape a plan as the API's answer: per action, the totals and the first contacts."""
    engine = population.engine
    names = {a.id: a.names[request.lang] for a in engine.catalog.actions}
    shown = plan.contacts().head(request.contacts)
    contacts = [
        {
            **{k: _plain(v) for k, v in row.items()},
            "name": names.get(str(row["action"]), str(row["name"])),
        }
        for row in shown[list(CONTACT_COLUMNS)].to_dict(orient="records")
    ]
    summary = plan.as_dict()
    actions = [{**row, "name": names.get(row["action"], row["name"])} for row in summary["actions"]]
    return PlanResponse.model_validate(
        {
            "actions": actions,
            "totals": summary["totals"],
            "contacts": contacts,
            "currency": plan.currency,
            "as_of": population.cutoff.to_pydatetime(),
            "model_versions": engine.versions,
        }
    )


def plan_request(population: Population, plans: Plans, request: PlanRequest) -> PlanResponse:
    """Answer ``POST /plan`` from a population.

    Raises
    ------
    RequestError
        422 ``unknown_action`` naming each cost override the catalog does not take.
    """
    problems = cost_problems(population.engine.catalog, request.costs)
    if problems:
        known = ", ".join(costed_actions(population.engine.catalog))
        raise RequestError(
            422,
            "unknown_action",
            f"costs can be set for the catalog's actions only: {known}",
            problems,
        )
    budget = Budget(request.budget, request.budget_kind)
    return plan_answer(plans.plan(population, budget, request.costs), population, request)


def no_lookup_error() -> RequestError:
    """Return the error ``/predict`` answers for a customer id when there is no lookup table."""
    return RequestError(
        404,
        "no_lookup_table",
        "this service has no customer lookup table; send events or features instead "
        "(start it with `lifecycle serve --events` or LIFECYCLE_LOOKUP)",
        [("budget", "no lookup table loaded: no customers to plan for")],
    )


def plan_csv(plan: Plan, cell: Any) -> str:
    """Return the contacts of ``plan`` as CSV text, with :meth:`Plan.write_csv`'s columns.

    ``cell`` makes each value a CSV cell (the page's guard against spreadsheet formulas);
    numbers are written exactly.
    """
    with tempfile.TemporaryDirectory() as folder:
        written = plan.write_csv(Path(folder) / "plan.csv")
        with written.open(encoding="utf-8", newline="") as handle:
            columns = next(csv.reader(handle))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in plan.contacts()[columns].itertuples(index=False):
        writer.writerow([cell(v) for v in row])
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """Return a JSON-ready value: numpy scalars as Python ones, NaN as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
