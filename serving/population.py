"""Everyone in the lookup table at once: predictions, actions and the summaries the page shows.

Computed once per worker (about a second for 20,000 customers: one vectorised call per model,
one next-best-action per customer, Tree SHAP on a sample for the churn drivers) and kept, so
page views only slice tables. The numbers come from the engine's served models, exactly as
``/predict`` would answer for each customer; each segment's observed churn comes from the
lookup table (:data:`~lifecycle.features.rfm.OBSERVED_CHURN_COLUMN`, written by
``lifecycle score`` or at start-up from the events), unknown for an older table without it.

The stage flow (:func:`stage_flows`) says how customers moved through the stages: where the
customers of each stage :data:`FLOW_DAYS` days before the table's cutoff are now. It rebuilds
the stages at those earlier cutoffs from the engine's events with the same definitions as
training and scoring (:func:`lifecycle.features.build.build_features`), once per engine,
which is the larger part of building the population: measured on one DuckDB thread, 0.3 s
for the tests' 2,500 customers (four years of events) and 1.8 s for the demo's 20,000.
Without events (no ``LIFECYCLE_EVENTS``) there is no flow, and the page says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.features.build import build_features
from lifecycle.features.definitions import model_features
from lifecycle.features.rfm import NO_PURCHASE, OBSERVED_CHURN_COLUMN, SEGMENTS
from lifecycle.features.schema import STAGES
from lifecycle.models.nba import recommend
from lifecycle.models.policy import Budget, Plan, estimated_uplift, plan
from lifecycle.models.scoring import predict_outputs
from lifecycle.models.tasks import TASKS, eligible
from lifecycle.serving.engine import Engine
from lifecycle.serving.explain import probability_points, raises_when

DRIVER_SAMPLE = 2000
"""Customers whose churn SHAP values are averaged for the population's top churn drivers."""

SORTABLE = ("clv_at_risk", "churn_risk", "next_stage_probability", "clv")
"""Columns a segment or stage list can be sorted by (highest first)."""

FLOW_DAYS = (30, 90, 180)
"""The periods (days before the table's cutoff) the stage flow can look back over."""

NEW = "new"
"""The stage-flow row of customers with no event yet at the earlier cutoff."""

log = logging.getLogger("lifecycle.serving")


@dataclass(frozen=True)
class Population:
    """One row per lookup customer with predictions and action; and the page's summaries."""

    customers: pd.DataFrame
    funnel: pd.DataFrame
    segments: pd.DataFrame
    churn_drivers: pd.DataFrame
    driver_sample: int
    cutoff: pd.Timestamp
    engine: Engine
    """The engine that scored it: a view answers from this one, even if a swap happens meanwhile."""
    flows: dict[int, pd.DataFrame] = field(default_factory=dict)
    """The stage flow over each of :data:`FLOW_DAYS` (:func:`stage_flows`); empty without events."""
    flow_seconds: float | None = None
    """What computing the flows took (None when there were no events to compute them from)."""


def build_population(engine: Engine, seed: int = 0) -> Population:
    """Score every lookup customer and summarise stages, segments and churn drivers."""
    lookup = engine.lookup
    if lookup is None:
        raise ValueError("the page needs the service's lookup table")
    frame = lookup.frame
    x = lookup.x
    masks = {task: eligible(task, frame) for task in TASKS}
    outputs = predict_outputs(engine.models, x, masks, threads=engine.batch_threads)
    customers = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str),
            "stage": frame["stage"].astype(str),
            "status": frame["status"].astype(str),
            "segment": frame["rfm_segment"].astype(str),
            # an older lookup table has no observed churn: unknown, and the page says nothing
            OBSERVED_CHURN_COLUMN: (
                frame[OBSERVED_CHURN_COLUMN].to_numpy(dtype="float64")
                if OBSERVED_CHURN_COLUMN in frame.columns
                else np.full(len(frame), np.nan)
            ),
            "next_stage_probability": outputs["next_stage_probability"],
            "churn_risk": outputs["churn_risk"],
            "clv": outputs["clv"],
            "clv_p10": outputs["clv_p10"],
            "clv_p90": outputs["clv_p90"],
        }
    )
    customers["clv_at_risk"] = customers["clv"] * customers["churn_risk"].fillna(0.0)
    customers["action"] = _actions(engine, customers, x)
    flows: dict[int, pd.DataFrame] = {}
    flow_seconds = None
    if engine.events_path is not None:
        started = time.perf_counter()
        flows = stage_flows(
            engine.events_path,
            customers,
            cutoff=lookup.cutoff,
            config=engine.lifecycle,
            threads=engine.batch_threads,
        )
        flow_seconds = time.perf_counter() - started
        log.info("stage flows over %s days: %.2f s", ", ".join(map(str, flows)), flow_seconds)
    return Population(
        customers=customers,
        funnel=funnel_table(customers),
        segments=segment_summary(customers),
        churn_drivers=churn_drivers(engine, x, masks["churn"], seed),
        driver_sample=int(min(DRIVER_SAMPLE, masks["churn"].sum())),
        cutoff=lookup.cutoff,
        engine=engine,
        flows=flows,
        flow_seconds=flow_seconds,
    )


def stage_flows(
    events: Any,
    customers: pd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    config: Any = None,
    days: Sequence[int] = FLOW_DAYS,
    threads: int | None = None,
) -> dict[int, pd.DataFrame]:
    """Say where the customers of each stage ``d`` days before ``cutoff`` are now.

    The stages at the earlier cutoffs come from
    :func:`~lifecycle.features.build.build_features` on the same events and config (the same
    stage definitions as training and scoring); "now" is ``customers["stage"]`` (the lookup
    table's, at ``cutoff``).

    Parameters
    ----------
    events
        Canonical events (a Parquet file or folder, or a frame).
    customers
        ``customer_id`` and ``stage`` now, one row per customer.
    cutoff
        The cutoff of ``customers``' stages.
    config
        The lifecycle config the stages are defined by (default: the shipped one).
    days
        How far back each flow looks.
    threads
        DuckDB threads.

    Returns
    -------
    dict[int, pandas.DataFrame]
        Per period, one row per stage then (in order) and a last row :data:`NEW` for customers
        with no event yet then: ``stage`` (then), ``customers``, the count now in each stage
        (a column per stage), ``moved_on`` (now in a later stage), ``stayed``, ``moved_back``
        (an earlier stage now, as stage rules allow) and ``moved_on_share``. Only customers in
        ``customers`` are counted.
    """
    periods = sorted({int(d) for d in days})
    if any(d <= 0 for d in periods):
        raise ValueError(f"stage-flow periods must be positive days, got {list(days)}")
    starts = {d: cutoff - pd.Timedelta(days=d) for d in periods}
    earlier = build_features(events, cutoffs=list(starts.values()), config=config, threads=threads)[
        ["customer_id", "cutoff", "stage"]
    ]
    now = customers.set_index("customer_id")["stage"]
    order = {stage: i for i, stage in enumerate(STAGES)}
    flows = {}
    for d, start in starts.items():
        then = earlier[earlier["cutoff"] == start].set_index("customer_id")["stage"].astype(str)
        pairs = pd.DataFrame({"now": now})
        pairs["then"] = then.reindex(pairs.index).fillna(NEW)
        counts = pd.crosstab(pairs["then"], pairs["now"]).reindex(
            index=[*STAGES, NEW], columns=list(STAGES), fill_value=0
        )
        rank_then = np.array([order.get(s, -1) for s in counts.index])[:, None]
        rank_now = np.arange(len(STAGES))[None, :]
        table = counts.to_numpy()
        out = pd.DataFrame({"stage": counts.index, "customers": table.sum(axis=1)})
        for i, stage in enumerate(STAGES):
            out[stage] = table[:, i]
        out["moved_on"] = (table * (rank_now > rank_then)).sum(axis=1)
        out["stayed"] = (table * (rank_now == rank_then)).sum(axis=1)
        out["moved_back"] = (table * (rank_now < rank_then)).sum(axis=1)
        out["moved_on_share"] = out["moved_on"] / out["customers"].where(out["customers"] > 0)
        flows[d] = out
    return flows


def _actions(engine: Engine, customers: pd.DataFrame, x: np.ndarray) -> list[str]:
    """Return the next-best-action id of each customer."""
    uplift: dict[str, np.ndarray] = {}
    if engine.uplift is not None:
        cols = engine.uplift.columns
        uplift = engine.uplift.estimator.predict_matrix(x if cols is None else x[:, cols])
    actions = []
    rows = customers[["stage", "segment", "next_stage_probability", "churn_risk", "clv"]]
    for i, (stage, segment, p_next, churn, clv) in enumerate(rows.itertuples(index=False)):
        rec = recommend(
            engine.catalog,
            stage=stage,
            segment=segment,
            predictions={"next_stage_probability": p_next, "churn_risk": churn, "clv": clv},
            uplift={offer: float(v[i]) for offer, v in uplift.items()} or None,
        )
        actions.append(rec.action)
    return actions


def funnel_table(customers: pd.DataFrame) -> pd.DataFrame:
    """Count customers per stage, those who reached it, conversion and active/lapsed."""
    counts = customers.groupby("stage").size().reindex(list(STAGES), fill_value=0)
    active = (
        customers[customers["status"] == "active"]
        .groupby("stage")
        .size()
        .reindex(list(STAGES), fill_value=0)
    )
    reached = counts[::-1].cumsum()[::-1]
    previous = reached.shift(1)
    out = pd.DataFrame(
        {
            "stage": list(STAGES),
            "customers": counts.to_numpy(),
            "reached": reached.to_numpy(),
            "conversion": (reached / previous).to_numpy(),
            "active": active.to_numpy(),
            "lapsed": (counts - active).to_numpy(),
        }
    )
    return out


def segment_summary(customers: pd.DataFrame) -> pd.DataFrame:
    """Per RFM segment: size, share, average CLV and churn risk, CLV at risk, common action.

    Also the segment's observed churn (``segment_churn_rate_90d``, the same on every row of a
    segment, so its first known value; NaN when unknown).
    """
    order = [*SEGMENTS, NO_PURCHASE]
    grouped = customers.groupby("segment")
    out = pd.DataFrame(
        {
            "customers": grouped.size(),
            "avg_clv": grouped["clv"].mean(),
            "avg_churn_risk": grouped["churn_risk"].mean(),
            OBSERVED_CHURN_COLUMN: grouped[OBSERVED_CHURN_COLUMN].first(),
            "clv_at_risk": grouped["clv_at_risk"].sum(),
            "top_action": grouped["action"].agg(lambda s: s.value_counts().index[0]),
        }
    ).reindex(order)
    out = out[out["customers"].notna()].copy()
    out["customers"] = out["customers"].astype(int)
    out["share"] = out["customers"] / out["customers"].sum()
    return out.reset_index(names="segment")


def churn_drivers(
    engine: Engine, x: np.ndarray, buyers: np.ndarray, seed: int, top: int = 8
) -> pd.DataFrame:
    """Mean absolute churn effect per feature over a sample of buyers, largest first.

    ``mean_abs`` is in percentage points of churn risk: each customer's Tree SHAP values
    (log-odds) turned into points of the reported probability
    (:func:`lifecycle.serving.explain.probability_points`), then averaged in size.

    ``raises_share`` is the share of the sample in which the feature pushes churn risk up;
    ``raises_when`` which of its values do (:func:`lifecycle.serving.explain.raises_when`:
    ``low_activity``, ``long_inactivity``, ``low``, ``high``, ``marketing_action`` or ``""``).
    """
    model = engine.models["churn"]
    rows = np.flatnonzero(buyers)
    if rows.size == 0:
        return pd.DataFrame(columns=["feature", "mean_abs", "raises_share", "raises_when"])
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(rows, size=min(DRIVER_SAMPLE, rows.size), replace=False))
    xs = x[sample] if model.columns is None else x[sample][:, model.columns]
    full = model.estimator.contributions_matrix(xs, engine.batch_threads)
    contrib = full[:, :-1]
    # the size a marketer reads: percentage points of churn risk, as in each customer's drivers
    calibrate = getattr(model.estimator, "calibrate", None)
    points = np.vstack([probability_points(row, calibrate)[0] for row in full])
    defined = {f.name: f for f in model_features(engine.lifecycle)}
    out = pd.DataFrame(
        {
            "feature": model.estimator.feature_names,
            "mean_abs": np.abs(points).mean(axis=0),
            "raises_share": (contrib > 0).mean(axis=0),
            "raises_when": [
                raises_when(xs[:, j], contrib[:, j], defined.get(name))
                for j, name in enumerate(model.estimator.feature_names)
            ],
        }
    )
    return out.sort_values("mean_abs", ascending=False, kind="stable").head(top)


def customers_of(
    population: Population, *, segment: str | None, stage: str | None, sort: str
) -> pd.DataFrame:
    """Return one segment's or stage's customers, by ``sort`` (highest first, NaN last)."""
    table = population.customers
    if segment is not None:
        table = table[table["segment"] == segment]
    if stage is not None:
        table = table[table["stage"] == stage]
    key = sort if sort in SORTABLE else "clv_at_risk"
    return table.sort_values(key, ascending=False, na_position="last", kind="stable")


def overview_json(population: Population) -> dict[str, Any]:
    """Return the overview's numbers as JSON (what the page shows, for scripts and tests)."""

    def records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {c: _plain(v) for c, v in zip(columns, row, strict=True)}
            for row in frame[list(columns)].itertuples(index=False)
        ]

    return {
        "cutoff": population.cutoff.isoformat(),
        "customers": len(population.customers),
        "funnel": records(
            population.funnel, ["stage", "customers", "reached", "conversion", "active", "lapsed"]
        ),
        "segments": records(
            population.segments,
            [
                "segment",
                "customers",
                "share",
                "avg_clv",
                "avg_churn_risk",
                OBSERVED_CHURN_COLUMN,
                "clv_at_risk",
                "top_action",
            ],
        ),
        "churn_drivers": records(
            population.churn_drivers, ["feature", "mean_abs", "raises_share", "raises_when"]
        ),
        "stage_flow": {
            str(days): records(
                flow, ["stage", "customers", *STAGES, "moved_on", "stayed", "moved_back"]
            )
            for days, flow in population.flows.items()
        },
    }


def _plain(value: Any) -> Any:
    """Return a JSON-ready value: numpy scalars as Python numbers, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def plan_population(
    population: Population, budget: Budget | None, costs: Mapping[str, float] | None = None
) -> Plan:
    """Plan next-best actions under a budget for everyone in a population.

    The page's ``/planner``, the API's ``POST /plan`` and ``lifecycle plan`` all plan through
    here: the population's predictions, and the uplift estimates of the engine that scored
    it when it has an uplift model (for the lookup table's rows, in the population's order).

    Parameters
    ----------
    population
        :func:`build_population` of an engine with a lookup table.
    budget, costs
        As :func:`lifecycle.models.policy.plan`.

    Returns
    -------
    Plan
        The plan over the population's customers.
    """
    engine = population.engine
    uplift = None
    if engine.uplift is not None and engine.lookup is not None:
        uplift = estimated_uplift(engine.uplift.estimator, engine.lookup.x, engine.uplift.columns)
    return plan(population.customers, engine.catalog, budget, uplift=uplift, costs=costs)
