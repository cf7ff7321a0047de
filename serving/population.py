"""Everyone in the lookup table at once: predictions, actions and the summaries the page shows.

Computed once per worker (about a second for 20,000 customers: one vectorised call per model,
one next-best-action per customer, Tree SHAP on a sample for the churn drivers) and kept, so
page views only slice tables. The numbers come from the engine's served models, exactly as
``/predict`` would answer for each customer; each segment's observed churn comes from the
lookup table (:data:`~lifecycle.features.rfm.OBSERVED_CHURN_COLUMN`, written by
``lifecycle score`` or at start-up from the events), unknown for an older table without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.features.rfm import NO_PURCHASE, OBSERVED_CHURN_COLUMN, SEGMENTS
from lifecycle.features.schema import STAGES
from lifecycle.models.nba import recommend
from lifecycle.models.scoring import predict_outputs
from lifecycle.models.tasks import TASKS, eligible
from lifecycle.serving.engine import Engine

DRIVER_SAMPLE = 2000
"""Customers whose churn SHAP values are averaged for the population's top churn drivers."""

SORTABLE = ("clv_at_risk", "churn_risk", "next_stage_probability", "clv")
"""Columns a segment or stage list can be sorted by (highest first)."""


@dataclass(frozen=True)
class Population:
    """One row per lookup customer with predictions and action; and the page's summaries."""

    customers: pd.DataFrame
    funnel: pd.DataFrame
    segments: pd.DataFrame
    churn_drivers: pd.DataFrame
    driver_sample: int
    cutoff: pd.Timestamp


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
    return Population(
        customers=customers,
        funnel=funnel_table(customers),
        segments=segment_summary(customers),
        churn_drivers=churn_drivers(engine, x, masks["churn"], seed),
        driver_sample=int(min(DRIVER_SAMPLE, masks["churn"].sum())),
        cutoff=lookup.cutoff,
    )


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
    """Mean absolute churn SHAP value per feature over a sample of buyers, largest first.

    ``raises_share`` is the share of the sample in which the feature pushes churn risk up.
    """
    model = engine.models["churn"]
    rows = np.flatnonzero(buyers)
    if rows.size == 0:
        return pd.DataFrame(columns=["feature", "mean_abs", "raises_share"])
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(rows, size=min(DRIVER_SAMPLE, rows.size), replace=False))
    xs = x[sample] if model.columns is None else x[sample][:, model.columns]
    contrib = model.estimator.contributions_matrix(xs, engine.batch_threads)[:, :-1]
    out = pd.DataFrame(
        {
            "feature": model.estimator.feature_names,
            "mean_abs": np.abs(contrib).mean(axis=0),
            "raises_share": (contrib > 0).mean(axis=0),
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
        "churn_drivers": records(population.churn_drivers, ["feature", "mean_abs", "raises_share"]),
    }


def _plain(value: Any) -> Any:
    """Return a JSON-ready value: numpy scalars as Python numbers, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
