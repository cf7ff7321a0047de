"""Model quality against baselines and the oracle, run side by side in one process.

Usage: python benchmarks/training_quality.py [sim] [cdnow_sample] [cdnow] [--customers N]
       [--trials N]

- ``sim``: simulate N customers over 4 years, train with the time-honest protocol and report
  each model against RFM, last-period, BG/NBD and the oracle (the simulator's true
  probabilities). Also compares one next-stage model (stage as a feature) with one model per
  stage, on the same split.
- ``cdnow_sample`` / ``cdnow``: the classic BTYD protocol (39-week calibration to 1997-09-30,
  39-week holdout). No time-honest split fits a 273-day horizon in 78 weeks, so the LightGBM
  models use a 5-fold customer cross-fit: every customer is scored by models that never saw
  it, trained on the other customers' rows at monthly cutoffs up to 1997-10-01 (their label
  windows overlap the holdout period in time: not time-honest, as in published work).
  BG/NBD + Gamma-Gamma is fitted on everyone's calibration period (it uses no labels). Both
  are scored on all customers: ranking AUC for "any purchase in the holdout", and for holdout
  revenue MAE, normalised Gini, Spearman and total bias.

Writes benchmarks/results/training-<UTC time>.json and prints the tables.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.build import build_features, feature_columns  # noqa: E402
from features.io import load_events  # noqa: E402
from features.mapping import load_mapping  # noqa: E402
from features.simulate import simulate  # noqa: E402
from models.lgbm import LifecycleClassifier, eligible, matrix  # noqa: E402
from training.config import Horizons, TrainingConfig, TuningSettings  # noqa: E402
from training.labels import build_labels  # noqa: E402
from training.metrics import classification_metrics, regression_metrics  # noqa: E402
from training.pipeline import fit_estimator, run_training  # noqa: E402
from training.splits import customer_groups  # noqa: E402
from training.tune import tune  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"
CDNOW_CUTOFFS = 9  # monthly training cutoffs up to 1997-10-01 (--cdnow-cutoffs)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_sim(customers: int, trials: int, seed: int = 11) -> dict:
    folder = CACHE / f"sim-{customers}-{seed}-1460"
    if not (folder / "truth.parquet").exists():
        log(f"simulating {customers:,} customers")
        simulate(customers, seed=seed, start="2024-01-01", out_dir=folder, days=1460)
    truth = pd.read_parquet(folder / "truth.parquet")
    config = TrainingConfig(tuning=TuningSettings(trials=trials), seed=seed)
    began = time.perf_counter()
    result = run_training(folder / "events.parquet", config=config, truth=truth, progress=log)
    seconds = time.perf_counter() - began
    out: dict = {"customers": customers, "trials": trials, "seconds": round(seconds, 1)}
    for task, res in result.tasks.items():
        metrics = {row: values["overall"] for row, values in res.summary["metrics"].items()}
        out[task] = {
            "cutoffs": res.summary["cutoffs"],
            "rows": res.summary["rows"],
            "metrics": metrics,
            "by_stage_model": res.summary["metrics"]["model"]["by_stage"],
            "by_stage_oracle": res.summary["metrics"].get("oracle", {}).get("by_stage"),
            "calibration": res.summary.get("calibration"),
            "customer_split": {
                k: v["overall"]
                for k, v in res.summary.get("customer_split", {}).items()
                if k != "cutoffs"
            },
            "tuning": res.tuning.summary(),
        }
    out["next_stage_per_stage"] = per_stage_comparison(result, config)
    return out


def per_stage_comparison(result, config: TrainingConfig) -> dict:
    """One next-stage model with stage as a feature vs one model per stage, same split."""
    res = result.tasks["next_stage"]
    frame = res.evaluation
    one = frame["score_model"].to_numpy()
    y = frame["label"].to_numpy()
    stages = frame["stage"].astype(str).to_numpy()
    rows = res.summary["rows"]
    per_stage = np.full(len(frame), np.nan)
    train, y_train, valid, y_valid = res.fit_data
    for stage in np.unique(stages):
        t, v = train["stage"].astype(str) == stage, valid["stage"].astype(str) == stage
        if t.sum() < 200 or v.sum() < 50 or len(np.unique(y_train[t])) < 2:
            continue
        model = LifecycleClassifier(
            "next_stage",
            res.estimator.feature_names,
            params=res.tuning.best_params,
            seed=config.seed,
            threads=config.threads,
        ).fit(train[t.to_numpy()], y_train[t], valid[v.to_numpy()], y_valid[v])
        sel = stages == stage
        per_stage[sel] = model.predict_proba(frame[sel])
    out = {"rows": rows, "one_model": {}, "per_stage": {}}
    for stage in np.unique(stages):
        sel = (stages == stage) & np.isfinite(per_stage)
        if sel.sum() < 20 or len(np.unique(y[sel])) < 2:
            continue
        out["one_model"][stage] = classification_metrics(y[sel], one[sel])["roc_auc"]
        out["per_stage"][stage] = classification_metrics(y[sel], per_stage[sel])["roc_auc"]
    sel = np.isfinite(per_stage)
    out["overall_one_model"] = classification_metrics(y[sel], one[sel])
    out["overall_per_stage"] = classification_metrics(y[sel], per_stage[sel])
    return out


def bench_cdnow(name: str, trials: int, seed: int = 11, folds: int = 5) -> dict:
    path = DATA / "cdnow" / ("CDNOW_sample.txt" if name == "cdnow_sample" else "CDNOW_master.txt")
    if not path.exists():
        return {"skipped": f"{path} not found"}
    loaded = load_events(str(path), mapping=load_mapping(name))
    events = loaded.events
    cutoff = pd.Timestamp("1997-10-01", tz="UTC")
    end = pd.Timestamp("1998-07-01", tz="UTC")
    horizon = (end - cutoff).days  # 273 days = 39 weeks
    cuts = list(pd.date_range("1997-02-01", "1997-10-01", freq="MS", tz="UTC"))[-CDNOW_CUTOFFS:]
    config = TrainingConfig(
        tasks=("churn", "clv"),
        horizons=Horizons(churn_days=horizon, clv_days=horizon),
        protocol="customer",
        tuning=TuningSettings(trials=trials),
        seed=seed,
    )
    log(f"{name}: features at {len(cuts)} cutoffs")
    features = build_features(events, cutoffs=cuts)
    names = feature_columns()
    customers = features.loc[features["cutoff"] == cutoff, "customer_id"]
    fold_of = pd.Series(
        (pd.util.hash_pandas_object(customers, index=False).to_numpy() % folds).astype(int),
        index=customers.to_numpy(),
    )
    inner = pd.Series(customer_groups(customers, seed=seed + 1), index=customers.to_numpy())
    row_fold = fold_of.reindex(features["customer_id"]).to_numpy()
    row_inner = inner.reindex(features["customer_id"]).to_numpy()
    at_eval = (features["cutoff"] == cutoff).to_numpy()
    out: dict = {
        "events": len(events),
        "customers": len(customers),
        "cutoff": cutoff.isoformat(),
        "horizon_days": horizon,
        "folds": folds,
        "trials": trials,
        "training_cutoffs": [c.isoformat() for c in cuts],
    }
    predictions: dict[str, np.ndarray] = {}
    labels_at_eval: dict[str, np.ndarray] = {}
    for task in ("churn", "clv"):
        y = build_labels(events, features, task=task, horizon_days=horizon, end=end)
        usable = eligible(task, features) & np.isfinite(y)
        pred = np.full(len(features), np.nan)
        params = None
        for k in range(folds):
            train = usable & (row_fold != k) & (row_inner != "valid")
            valid = usable & (row_fold != k) & (row_inner == "valid") & at_eval
            test = usable & (row_fold == k) & at_eval
            if params is None:
                log(f"{name} {task}: tuning ({trials} trials) on fold 0")
                probe = fit_estimator(
                    task,
                    config,
                    {},
                    names,
                    features[train][:50],
                    y[train][:50],
                    features[valid][:50],
                    y[valid][:50],
                )
                base = probe.lgb_params()
                yt, yv = y[train], y[valid]
                if task == "clv":
                    yt, yv = np.maximum(yt, 0), np.maximum(yv, 0)
                params = tune(
                    task,
                    base,
                    matrix(features[train], names),
                    yt,
                    matrix(features[valid], names),
                    yv,
                    feature_names=names,
                    settings=config.tuning,
                    seed=seed,
                ).best_params
            model = fit_estimator(
                task, config, params, names, features[train], y[train], features[valid], y[valid]
            )
            rows = features[test]
            if task == "clv":
                pred[test] = model.predict_clv(rows)
            else:
                pred[test] = model.predict_proba(rows)
        predictions[task] = pred[at_eval]
        labels_at_eval[task] = y[at_eval]
    ids = features.loc[at_eval, "customer_id"].astype(str).to_numpy()

    log(f"{name}: BG/NBD + Gamma-Gamma")
    from models.baselines import BetaGeoGammaGammaBaseline, rfm_summary

    t0 = time.perf_counter()
    summary = rfm_summary(events, cutoff=cutoff)
    bg = BetaGeoGammaGammaBaseline(seed=seed).fit(summary)
    bg_pred = bg.predict(summary, horizon_days=horizon).reindex(ids)
    out["bgnbd_seconds"] = round(time.perf_counter() - t0, 1)

    bought = 1.0 - labels_at_eval["churn"]
    ours_p = 1.0 - predictions["churn"]
    out["repeat_purchase"] = {
        "lightgbm": classification_metrics(bought, ours_p),
        "bgnbd": classification_metrics(
            bought, np.clip(bg_pred["probability_purchase"].to_numpy(dtype=float), 0, 1)
        ),
    }
    # the published 0.773 ranks by expected purchases; only the AUC is comparable there
    out["repeat_purchase"]["bgnbd_expected_purchases_auc"] = classification_metrics(
        bought, _rank01(bg_pred["expected_purchases"].to_numpy(dtype=float))
    )["roc_auc"]
    revenue = labels_at_eval["clv"]
    out["clv"] = {
        "lightgbm": regression_metrics(revenue, predictions["clv"]),
        "bgnbd_gamma_gamma": regression_metrics(
            revenue, np.nan_to_num(bg_pred["expected_clv"].to_numpy(dtype=float))
        ),
    }
    out["expected_vs_actual_purchases"] = {
        "bgnbd_expected": float(bg_pred["expected_purchases"].sum()),
    }
    return out


def _rank01(values: np.ndarray) -> np.ndarray:
    """Map scores to (0, 1] by rank, keeping their order (ties stay tied)."""
    return pd.Series(values).rank(method="average", pct=True).to_numpy()


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", choices=["sim", "cdnow_sample", "cdnow"])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--cdnow-cutoffs", type=int, default=9)
    args = parser.parse_args(argv)
    global CDNOW_CUTOFFS
    CDNOW_CUTOFFS = args.cdnow_cutoffs
    customers, trials = args.customers, args.trials
    which = args.which or ["sim", "cdnow_sample", "cdnow"]
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    for name in which:
        began = time.perf_counter()
        results[name] = bench_sim(customers, trials) if name == "sim" else bench_cdnow(name, trials)
        results[name]["wall_seconds"] = round(time.perf_counter() - began, 1)
        log(f"{name} done in {results[name]['wall_seconds']} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"training-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")
    print(json.dumps(results, indent=2, default=float)[:6000])
    print(f"-> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
