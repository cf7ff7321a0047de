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
