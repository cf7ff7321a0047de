"""Next-best-action plan: offline evaluation against the heuristics and the oracle (issue 18).

On one simulated world, trained end to end with the CLI (simulate, validate, train, promote:
the world builder of ``serving_latency.py``), the budgeted plan of
:mod:`lifecycle.models.policy` is applied to the randomised campaign history (the latest
``--sends`` sends with a complete outcome window) at several budgets (a share of each send's
targeted customers), next to send-nothing, random targeting, highest churn risk first,
highest CLV first and the oracle that knows each customer's true uplift. For each policy:
the true value (from the simulator's ``true_uplift`` and truth table) and the IPW and DR
estimates with 90% intervals, in incremental purchases and in incremental value net of cost,
per targeted customer.

Two sets of predictions are evaluated: the champion models' (what ships) and the simulator's
true ones (how much the plan loses to prediction error rather than to the uplift estimates).
The uplift estimates (calibrated, as served) are cross-fitted by customer (2 folds), so no row
is scored by a model that saw it. A forward-in-time check (``"predictions": "forward"``) fits
the uplift learner on the earlier half of the sends only and evaluates every policy on the
later half, with the champion models' predictions: nothing a policy uses comes from a later
send's outcomes, except what the champion models (shared by every policy) learnt.

Writes <out>/policy-<UTC time>.json (default benchmarks/results) and prints a Markdown table.
``--quick``: 3,000 customers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_latency import RESULTS, build_world  # the same world builder

from lifecycle.features.build import feature_columns
from lifecycle.models.lgbm import matrix
from lifecycle.models.nba import load_catalog
from lifecycle.models.policy import (
    OutcomeModels,
    attach_true_uplift,
    campaign_history,
    cross_fit,
    evaluate_policies,
    true_purchase_uplift,
)
from lifecycle.models.scoring import place
from lifecycle.models.store import connect, load_champions, shared_lifecycle
from lifecycle.models.uplift import TwoModelUplift, campaign_frame

CACHE = Path(__file__).resolve().parent / ".cache"


def log(message: str) -> None:
    """Print a progress line on standard error."""
    print(f"[policy] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A 3,000-customer world.")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--sends", type=int, default=12, help="Latest sends to evaluate on.")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.10, 0.25])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def true_predictions(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The campaign frame with the simulator's true predictions at each send."""
    table = truth.rename(columns={"as_of": "cutoff"})
    table["cutoff"] = table["cutoff"].astype("datetime64[us, UTC]")
    table = table.assign(
        next_stage_probability=table["p_next_stage_30d"],
        churn_risk=table["p_churn_90d"],
        clv=table["expected_revenue_365d"],
    )
    out = frame.rename(columns={"rfm_segment": "segment"}).merge(
        table[["customer_id", "cutoff", "next_stage_probability", "churn_risk", "clv"]],
        on=["customer_id", "cutoff"],
        how="left",
        validate="many_to_one",
    )
    return out


def forward_models(frame: pd.DataFrame, names: list[str], later: pd.Series) -> OutcomeModels:
    """Uplift and arm predictions for the later sends from a learner fitted on the earlier ones."""
    model = TwoModelUplift(names, seed=0).fit(frame[~later])
    test = frame[later]
    x = matrix(test, names)
    offers = list(model.offers)
    treated = {o: model.boosters_[o][0].predict(x) for o in offers}
    control = np.mean([model.boosters_[o][1].predict(x) for o in offers], axis=0)
    index = pd.RangeIndex(len(test))
    return OutcomeModels(
        uplift=model.predict_frame(test).set_axis(index),
        control=np.asarray(control, dtype=np.float64),
        treated=pd.DataFrame(treated, index=index),
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table: per budget and prediction source, each policy's true and estimated value."""
    lines = [
        "| predictions | budget | policy | contacted | true purchases | IPW purchases [90%] "
        "| DR purchases [90%] | true value | IPW value [90%] | DR value [90%] |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:

        def cell(key: str, digits: int, r: dict[str, Any] = r) -> str:
            return (
                f"{r[key]:+.{digits}f} [{r[key + '_low']:+.{digits}f}, "
                f"{r[key + '_high']:+.{digits}f}]"
            )

        lines.append(
            f"| {r['predictions']} | {r['share']:.0%} | {r['policy']} | {r['contacts']:.1%} "
            f"| {r['true_purchases']:+.4f} | {cell('ipw_purchases', 4)} "
            f"| {cell('dr_purchases', 4)} | {r['true_value']:+.3f} | {cell('ipw_value', 3)} "
            f"| {cell('dr_value', 3)} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    customers = args.customers or (3000 if args.quick else 20000)
    began = time.perf_counter()
    folder = (CACHE / f"policy-world-{customers}c").resolve()
    world = build_world(folder, customers, seed=args.seed, trials=1)
    client = connect(world["tracking_uri"])
    champions = load_champions(client)
    config = shared_lifecycle(champions)
    names = feature_columns(config)
    events = folder / "validated" / "events.parquet"
    campaigns = pd.read_parquet(folder / "sim" / "campaigns.parquet")
    truth = pd.read_parquet(folder / "sim" / "truth.parquet")
    log(f"campaign frame of the latest {args.sends} sends")
    frame = campaign_frame(events, campaigns, config=config, max_campaigns=args.sends)
    log(f"{len(frame):,} targeted customers; predictions at each send")
    models = place({task: m.estimator for task, m in champions.items()}, names)
    histories = {
        "models": attach_true_uplift(campaign_history(frame, models, names), campaigns),
        "truth": attach_true_uplift(true_predictions(frame, truth), campaigns),
    }
    log("cross-fitting the uplift learner (2 folds)")
    outcome_models = cross_fit(frame, names)
    true_uplift = true_purchase_uplift(histories["models"], truth)
    catalog = load_catalog()
    rows: list[dict[str, Any]] = []
    for source, history in histories.items():
        for share in args.shares:
            evaluation = evaluate_policies(
                history, catalog, outcome_models, share=share, true_uplift=true_uplift
            )
            for record in evaluation.as_dict()["policies"]:
                rows.append({"predictions": source, "share": share, **record})
            log(f"{source} predictions, {share:.0%}: done")
    sends = sorted(frame["cutoff"].unique())
    later = frame["cutoff"].isin(sends[len(sends) // 2 :])
    log(f"forward in time: the uplift learner fitted on the first {len(sends) // 2} sends")
    forward = forward_models(frame, names, later)
    history = histories["models"][later.to_numpy()].reset_index(drop=True)
    for share in args.shares:
        evaluation = evaluate_policies(
            history,
            catalog,
            forward,
            share=share,
            true_uplift=true_uplift[later.to_numpy()].reset_index(drop=True),
        )
        for record in evaluation.as_dict()["policies"]:
            rows.append({"predictions": "forward", "share": share, **record})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = {
        "benchmark": "policy",
        "run": stamp,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "world": {"customers": customers, "seed": args.seed, "reused": world.get("reused")},
        "history": {
            "sends": int(frame["cutoff"].nunique()),
            "rows": len(frame),
            "customers": int(frame["customer_id"].nunique()),
        },
        "measured_actions": evaluation.notes,
        "seconds": round(time.perf_counter() - began, 1),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"policy-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(markdown(rows))
    log(f"wrote {path} in {out['seconds']} s")


if __name__ == "__main__":
    main()
