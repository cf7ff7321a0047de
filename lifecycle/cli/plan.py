"""``lifecycle plan``: whom to contact, with what, within a budget, and what it is worth.

Loads what the service loads (the champion models, the uplift model when one holds the alias,
the lookup table ``lifecycle score`` wrote), scores every customer as the page does
(:func:`lifecycle.serving.population.build_population`), and calls
:func:`lifecycle.models.policy.plan`. With ``--campaigns`` it also evaluates the plan offline
on the randomised campaign history (:func:`lifecycle.models.policy.offline_evaluation`) next to
the heuristics, and on simulated data next to the oracle and the true values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from lifecycle.cli.options import (
    EXIT_USAGE,
    AliasOpt,
    JsonOpt,
    ProjectOpt,
    TrackingUriOpt,
    fail,
)
from lifecycle.cli.output import emit, note, out_console

if TYPE_CHECKING:
    from lifecycle.models.policy import Budget, Evaluation, Plan


def parse_costs(values: list[str] | None) -> dict[str, float]:
    """Parse ``action=cost`` pairs of ``--cost-per-action``.

    Raises
    ------
    typer.BadParameter
        For a pair without ``=``, a repeated action or a cost that is not a number.

    Examples
    --------
    >>> parse_costs(["win_back=2.5", "onboarding_nudge=0"])
    {'win_back': 2.5, 'onboarding_nudge': 0.0}
    """
    costs: dict[str, float] = {}
    for value in values or []:
        action, sep, amount = value.partition("=")
        if not sep or not action.strip():
            raise typer.BadParameter(f"expected action=cost, got {value!r}")
        if action.strip() in costs:
            raise typer.BadParameter(f"the cost of {action.strip()!r} is given twice")
        try:
            costs[action.strip()] = float(amount)
        except ValueError as exc:
            raise typer.BadParameter(f"the cost in {value!r} is not a number") from exc
    return costs


def plan(
    budget: Annotated[
        float, typer.Option(help="Contacts (count) or money (in the catalog's currency).", min=0)
    ],
    lookup: Annotated[
        Path | None,
        typer.Option(
            help="Lookup table written by `lifecycle score` (the customers to plan for).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="Canonical events: build the customers from them when no --lookup is given; "
            "needed with --campaigns (features at each send).",
            exists=True,
        ),
    ] = None,
    budget_kind: Annotated[
        str, typer.Option(help="What --budget counts: count (contacts) or money.")
    ] = "count",
    cost_per_action: Annotated[
        list[str] | None,
        typer.Option(
            "--cost-per-action",
            help="Override an action's cost: action=cost (repeat the option for several).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="CSV of the customers to contact, for a campaign tool.")
    ] = None,
    everyone: Annotated[
        bool,
        typer.Option(help="Write every customer to --out, with why the others are left alone."),
    ] = False,
    campaigns: Annotated[
        Path | None,
        typer.Option(
            help="Randomised campaign history (campaigns.parquet): evaluate the plan offline.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="The simulator's truth.parquet: add the oracle and the true values.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    share: Annotated[
        float,
        typer.Option(help="Share of each send's customers the evaluated policies contact."),
    ] = 0.1,
    max_campaigns: Annotated[
        int, typer.Option(help="Latest sends to evaluate on (with complete windows).", min=1)
    ] = 12,
    actions: Annotated[
        Path | None,
        typer.Option(help="Action catalog YAML (default: the shipped one).", exists=True),
    ] = None,
    alias: AliasOpt = "champion",
    project: ProjectOpt = "lifecycle",
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan next-best actions under a budget and, with --campaigns, evaluate the plan offline.

    Per action: customers, cost and expected incremental value net of cost with a 90%
    interval (a bootstrap over the customers). "Do nothing" only where no action is expected to
    pay off.
    """
    from lifecycle.models.policy import Budget, with_costs
    from lifecycle.training.tracking import quiet_mlflow

    if budget_kind not in ("count", "money"):
        raise fail(f"--budget-kind must be count or money, got {budget_kind!r}", EXIT_USAGE)
    if lookup is None and events is None:
        raise fail("give --lookup (from `lifecycle score`) or --events", EXIT_USAGE)
    if campaigns is not None and events is None:
        raise fail("--campaigns needs --events (the features at each send)", EXIT_USAGE)
    if truth is not None and campaigns is None:
        raise fail("--truth needs --campaigns", EXIT_USAGE)
    if not 0 < share <= 1:
        raise fail(f"--share must be in (0, 1], got {share}", EXIT_USAGE)
    costs = parse_costs(cost_per_action)
    kind: Literal["count", "money"] = "count" if budget_kind == "count" else "money"
    try:
        spend = Budget(budget, kind)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    quiet_mlflow()
    began = time.perf_counter()
    engine = _engine(tracking_uri, alias, project, lookup, events, actions)
    try:
        with_costs(engine.catalog, costs)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    result = plan_engine(engine, spend, costs)
    if out is not None:
        result.write_csv(out, everyone=everyone)
    evaluation = None
    if campaigns is not None and events is not None:
        evaluation = _evaluate(engine, events, campaigns, truth, share, max_campaigns, costs)
    summary: dict[str, Any] = {
        "plan": result.as_dict(),
        "out": None if out is None else str(out),
        "evaluation": None if evaluation is None else evaluation.as_dict(),
        "seconds": round(time.perf_counter() - began, 1),
    }
    if not as_json:
        _print_plan(result)
        if evaluation is not None:
            _print_evaluation(evaluation)
    totals = result.totals
    emit(
        summary,
        f"planned {totals['contacts']:,} of {totals['customers']:,} customers for "
        f"{totals['cost']:,.2f} {result.currency}: expected net {totals['net_value']:,.2f} "
        f"{result.currency}" + (f"; wrote {out}" if out is not None else ""),
        as_json,
    )


def _engine(
    tracking_uri: str | None,
    alias: str,
    project: str,
    lookup: Path | None,
    events: Path | None,
    actions: Path | None,
) -> Any:
    """Load the engine the service would serve (champions, uplift, lookup table)."""
    from lifecycle.serving.engine import Engine, ServiceError

    note("loading the champion models and the customers")
    try:
        return Engine.load(
            tracking_uri=tracking_uri,
            alias=alias,
            project=project,
            lookup=lookup,
            events=events if lookup is None else None,
            actions=actions,
        )
    except (ServiceError, ValueError) as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


def plan_engine(engine: Any, budget: Budget | None, costs: dict[str, float] | None = None) -> Plan:
    """Score everyone in an engine's lookup table as the page does, and plan.

    Parameters
    ----------
    engine
        A loaded :class:`lifecycle.serving.engine.Engine` with a lookup table.
    budget, costs
        As :func:`lifecycle.models.policy.plan`.

    Returns
    -------
    Plan
        The plan over the lookup table's customers, with the engine's uplift estimates when it
        has an uplift model.
    """
    from lifecycle.serving.population import build_population, plan_population

    return plan_population(build_population(engine), budget, costs)


def _evaluate(
    engine: Any,
    events: Path,
    campaigns: Path,
    truth: Path | None,
    share: float,
    max_campaigns: int,
    costs: dict[str, float],
) -> Evaluation:
    """Evaluate the policies on the campaign history with the engine's models."""
    import pandas as pd

    from lifecycle.features.build import feature_columns
    from lifecycle.models.policy import attach_true_uplift, campaign_history, offline_evaluation
    from lifecycle.models.uplift import campaign_frame

    note("evaluating the plan on the campaign history")
    table = pd.read_parquet(campaigns)
    try:
        frame = campaign_frame(events, table, config=engine.lifecycle, max_campaigns=max_campaigns)
        history = campaign_history(frame, engine.models, engine.feature_names)
        if truth is not None:
            history = attach_true_uplift(history, table)
        features = (
            engine.uplift.estimator.feature_names
            if engine.uplift is not None
            else feature_columns(engine.lifecycle)
        )
        return offline_evaluation(
            history,
            engine.catalog,
            features,
            share=share,
            costs=costs,
            truth=None if truth is None else pd.read_parquet(truth),
        )
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


def _money(value: Any) -> str:
    return f"{float(value):,.2f}"


def _print_plan(result: Plan) -> None:
    from rich.table import Table

    table = Table(title=f"Plan ({result.currency}; net value with a 90% interval)")
    for column in ("action", "customers", "cost", "expected value", "net value", "interval"):
        table.add_column(column, justify="left" if column == "action" else "right")
    for row in result.summary.itertuples(index=False):
        table.add_row(
            str(row.name),
            f"{row.customers:,}",
            _money(row.cost),
            _money(row.expected_value),
            _money(row.net_value),
            f"{_money(row.net_low)} to {_money(row.net_high)}",
        )
    totals = result.totals
    table.add_row(
        "total",
        f"{totals['contacts']:,}",
        _money(totals["cost"]),
        _money(totals["expected_value"]),
        _money(totals["net_value"]),
        f"{_money(totals['net_low'])} to {_money(totals['net_high'])}",
    )
    out_console().print(table)
    out_console().print(
        f"left alone: {totals['no_gain']:,} with no action expected to pay off, "
        f"{totals['no_eligible_action']:,} with no eligible action, "
        f"{totals['over_budget']:,} over the budget"
    )


def _print_evaluation(evaluation: Evaluation) -> None:
    from rich.table import Table

    pct = round(evaluation.interval * 100)
    out_console().print(
        f"Offline evaluation on {evaluation.rows:,} targeted customers in {evaluation.sends} "
        f"sends, {evaluation.share:.0%} of each send contacted: per targeted customer, with "
        f"{pct}% intervals"
    )
    truth = bool(evaluation.table["true_value"].notna().any())
    for unit, title, digits in (
        ("purchases", "incremental purchases", 4),
        ("value", f"incremental value net of cost ({evaluation.currency})", 3),
    ):
        table = Table(title=title)
        for column in ("policy", "contacts", "IPW", "DR", *(["true"] if truth else [])):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for row in evaluation.table.to_dict(orient="records"):
            cells = [str(row["policy"]), f"{row['contacts']:.1%}"]
            for est in ("ipw", "dr"):
                key = f"{est}_{unit}"
                cells.append(
                    f"{row[key]:+.{digits}f} [{row[key + '_low']:+.{digits}f}, "
                    f"{row[key + '_high']:+.{digits}f}]"
                )
            if truth:
                cells.append(f"{row[f'true_{unit}']:+.{digits}f}")
            table.add_row(*cells)
        out_console().print(table)
    for line in evaluation.notes:
        out_console().print(line)
