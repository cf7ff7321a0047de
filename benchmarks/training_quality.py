"""Model quality against baselines and the oracle, run side by side in one process.

Usage: python benchmarks/training_quality.py [sim] [--customers N] [--trials N] [--out DIR]

- ``sim``: simulate N customers over 4 years, train with the time-honest protocol and report
  each model against RFM, last-period, BG/NBD and the oracle (the simulator's true
  probabilities). Also compares one next-stage model (stage as a feature) with one model per
  stage, on the same split.

Real data (CDNOW, Online Retail) against BTYD peers is ``benchmarks/real_data.py``.

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

from lifecycle.features.simulate import simulate  # noqa: E402
from lifecycle.models.lgbm import LifecycleClassifier  # noqa: E402
from lifecycle.training.config import TrainingConfig, TuningSettings  # noqa: E402
from lifecycle.training.metrics import classification_metrics  # noqa: E402
from lifecycle.training.pipeline import run_training  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"


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
    try:
        add_observed_oracle(out, customers, seed)
    except Exception as exc:  # the model tables still print; the JSON says why
        log(f"observed oracle skipped: {exc!r}")
        out["observed_oracle_error"] = repr(exc)
    return out


# The observed-events oracle (benchmarks/observed_oracle.py): the best prediction from the events
# alone under the simulator's own model (the latent oracle also knows each customer's hidden
# state). Both sit beside the model in the tables; the gaps say what is attainable.
OBSERVED_ORACLE_DRAWS = 128
OBSERVED_ORACLE_REPLICATES = 2
_OBSERVED_ORACLE_TASKS = {"next_stage": (30, "p_next_stage_30d"), "churn": (90, "p_churn_90d")}


def add_observed_oracle(out: dict, customers: int, seed: int = 11) -> None:
    """Add the observed oracle's metrics on each task's evaluation rows to ``out`` in place."""
    import importlib.util

    from lifecycle.features.build import build_features
    from lifecycle.training.labels import build_labels, observation_end

    spec = importlib.util.spec_from_file_location(
        "observed_oracle", Path(__file__).with_name("observed_oracle.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("observed_oracle", module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    folder = CACHE / f"sim-{customers}-{seed}-1460"
    events = pd.read_parquet(folder / "events.parquet")
    truth = pd.read_parquet(folder / "truth.parquet")
    end = observation_end(folder / "events.parquet")
    for task, (horizon, column) in _OBSERVED_ORACLE_TASKS.items():
        config = TrainingConfig()  # bench_sim trains with the default horizons and protocol
        if task not in out or config.horizons.of(task) != horizon or config.protocol != "time":
            continue  # the truth's columns hold these horizons only
        cutoff = pd.Timestamp(out[task]["cutoffs"]["eval"])
        rows = build_features(events, cutoffs=[cutoff])
        labels = build_labels(events, rows, task=task, horizon_days=horizon, end=end)
        keep = np.isfinite(labels)
        rows = rows[keep].reset_index(drop=True)
        rows["label"] = labels[keep]
        log(f"{task}: observed oracle on {len(rows):,} rows")
        result = module.observed_oracle_auc(
            events,
            truth,
            rows,
            cutoff=cutoff,
            column=column,
            draws=OBSERVED_ORACLE_DRAWS,
            replicates=OBSERVED_ORACLE_REPLICATES,
            seed=seed,
        )
        metrics = dict(result.pop("metrics"))
        metrics["roc_auc_mc_sd"] = result["mc_sd"]
        out[task]["metrics"]["observed_oracle"] = metrics
        out[task]["observed_oracle"] = result


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


SHOWN = {
    "next_stage": ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10"),
    "churn": ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10"),
    "clv": ("mae", "rmse", "spearman", "normalized_gini", "decile_mape", "total_bias"),
}


def table(task: str, metrics: dict) -> str:
    shown = SHOWN[task]
    lines = [f"**{task}** (simulated, time-honest)", "", "| | " + " | ".join(shown) + " |"]
    lines.append("|---|" + "---:|" * len(shown))
    for name, values in metrics.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.4f}" for k in shown) + " |")
    observed = metrics.get("observed_oracle")
    if observed is not None and "oracle" in metrics and "model" in metrics:
        auc = {k: metrics[k]["roc_auc"] for k in ("oracle", "observed_oracle", "model")}
        lines += [
            "",
            f"ROC AUC gaps: latent oracle - observed-events oracle "
            f"{auc['oracle'] - auc['observed_oracle']:+.4f} (what no model can reach); "
            f"observed-events oracle - model {auc['observed_oracle'] - auc['model']:+.4f} "
            f"(what is left to gain); observed-events oracle Monte Carlo error (sd of one "
            f"replicate) {observed.get('roc_auc_mc_sd', float('nan')):.4f}",
        ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help="sim (the default; the only one)")
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    customers, trials = args.customers, args.trials
    which = args.which or ["sim"]
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    for name in which:
        began = time.perf_counter()
        results[name] = bench_sim(customers, trials)
        results[name]["wall_seconds"] = round(time.perf_counter() - began, 1)
        log(f"{name} done in {results[name]['wall_seconds']} s")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"training-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")
    for name in which:
        for task in ("next_stage", "churn", "clv"):
            print(table(task, results[name][task]["metrics"]), end="\n\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
