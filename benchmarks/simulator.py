"""Simulator speed and memory, and how well its ground truth matches realised outcomes.

For each customer count the simulator runs in a fresh process (peak memory is its own); for the
first count the script also compares ``truth.parquet`` with what then happened in the events:
no purchase within 90 days (``p_churn_90d``), a higher stage 30 days later
(``p_next_stage_30d``) and net revenue over 365 days (``expected_revenue_365d``). Only periods
whose horizon ends inside the simulated window count; standard errors are clustered by customer.

    .venv/bin/python benchmarks/simulator.py --customers 100000 1000000

Results: one JSON file per run under benchmarks/results/, and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

HERE = Path(__file__).resolve().parent

CHILD = """
import json, sys, time
def hwm_kb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
from lifecycle.features.simulate import simulate
began = time.perf_counter()
summary = simulate(int(sys.argv[1]), seed=int(sys.argv[2]), out_dir=sys.argv[3], days=730)
print(json.dumps({"seconds": time.perf_counter() - began, "peak_rss_kb": hwm_kb(),
                  "events": summary.events, "truth_rows": summary.truth_rows,
                  "end": summary.end}))
"""

OUTCOMES_SQL = """
WITH t AS (SELECT * FROM read_parquet($truth)),
     e AS (SELECT * FROM read_parquet($events)),
     churn AS (
       SELECT t.customer_id, t.p_churn_90d AS predicted,
              CASE WHEN count(e.customer_id) = 0 THEN 1.0 ELSE 0.0 END AS realised
       FROM t LEFT JOIN e ON e.customer_id = t.customer_id AND e.event_type = 'purchase'
            AND e.event_ts >= t.as_of AND e.event_ts < t.as_of + INTERVAL 90 DAY
       WHERE t.p_churn_90d IS NOT NULL AND t.as_of + INTERVAL 90 DAY <= $end::TIMESTAMPTZ
       GROUP BY t.customer_id, t.as_of, t.p_churn_90d
     ),
     rank AS (
       SELECT * FROM (VALUES ('reach', 0), ('acquisition', 1), ('conversion', 2),
                             ('retention', 3), ('loyalty', 4)) v(stage, code)
     ),
     next_stage AS (
       SELECT t.customer_id, t.p_next_stage_30d AS predicted,
              CASE WHEN r1.code > r0.code THEN 1.0 ELSE 0.0 END AS realised
       FROM t JOIN t AS later ON later.customer_id = t.customer_id
            AND later.as_of = t.as_of + INTERVAL 30 DAY
       JOIN rank r0 ON r0.stage = t.stage JOIN rank r1 ON r1.stage = later.stage
     ),
     revenue AS (
       SELECT t.customer_id, t.expected_revenue_365d AS predicted,
              coalesce(sum(e.revenue), 0) AS realised
       FROM t LEFT JOIN e ON e.customer_id = t.customer_id
            AND e.event_type IN ('purchase', 'refund')
            AND e.event_ts >= t.as_of AND e.event_ts < t.as_of + INTERVAL 365 DAY
       WHERE t.as_of + INTERVAL 365 DAY <= $end::TIMESTAMPTZ
       GROUP BY t.customer_id, t.as_of, t.expected_revenue_365d
     )
SELECT 'churn_90d' AS outcome, * FROM churn
UNION ALL SELECT 'next_stage_30d', * FROM next_stage
UNION ALL SELECT 'revenue_365d', * FROM revenue
"""


def run_simulation(customers: int, seed: int, out_dir: Path) -> dict[str, object]:
    """Simulate in a fresh process and return its time and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(customers), str(seed), str(out_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "customers": customers,
        "events": result["events"],
        "truth_rows": result["truth_rows"],
        "seconds": round(result["seconds"], 2),
        "customers_per_second": round(customers / result["seconds"]),
        "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
        "end": result["end"],
    }


def truth_vs_realised(out_dir: Path, end: str) -> list[dict[str, object]]:
    """Compare the truth with realised outcomes, overall and by decile of the prediction."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    params = {
        "truth": str(out_dir / "truth.parquet"),
        "events": str(out_dir / "events.parquet"),
        "end": end,
    }
    rows = con.execute(OUTCOMES_SQL, params).df()
    report = []
    for outcome, part in rows.groupby("outcome"):
        diff = part["realised"] - part["predicted"]
        # Periods of one customer overlap (a purchase sits in up to 12 revenue windows), so the
        # standard error is clustered by customer rather than taken over independent rows.
        per_customer = (diff - diff.mean()).groupby(part["customer_id"]).sum()
        se = float((per_customer**2).sum() ** 0.5) / len(part)
        deciles = pd.qcut(part["predicted"].rank(method="first"), 10, labels=False)
        gaps = part.groupby(deciles)[["realised", "predicted"]].mean()
        gap = (gaps["realised"] - gaps["predicted"]).to_numpy()
        report.append(
            {
                "outcome": outcome,
                "n": len(part),
                "mean_predicted": round(float(part["predicted"].mean()), 4),
                "mean_realised": round(float(part["realised"].mean()), 4),
                "difference_in_standard_errors": round(float(diff.mean() / se), 2),
                "largest_decile_gap": round(float(gap[abs(gap).argmax()]), 4),
            }
        )
    return report


def main() -> None:
    """Run the simulator benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    speed, calibration = [], []
    with tempfile.TemporaryDirectory(prefix="lifecycle-sim-") as tmp:
        for i, customers in enumerate(args.customers):
            out_dir = Path(tmp) / str(customers)
            speed.append(run_simulation(customers, args.seed, out_dir))
            print(f"{customers:,} customers: {speed[-1]['seconds']} s", file=sys.stderr)
            if i == 0:
                calibration = truth_vs_realised(out_dir, f"{speed[-1]['end']}T00:00:00+00:00")
    report = {
        "benchmark": "simulator",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "seed": args.seed,
        "speed": speed,
        "truth_vs_realised": {"customers": args.customers[0], "outcomes": calibration},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"simulator-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| customers | events | truth rows | seconds | customers/s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in speed:
        print(
            f"| {r['customers']:,} | {r['events']:,} | {r['truth_rows']:,} | {r['seconds']} | "
            f"{r['customers_per_second']:,} | {r['peak_rss_mb']} |"
        )
    print()
    print(
        "| outcome | periods | mean truth | mean realised | difference (standard errors)"
        " | largest decile gap |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for c in calibration:
        print(
            f"| {c['outcome']} | {c['n']:,} | {c['mean_predicted']} | {c['mean_realised']} | "
            f"{c['difference_in_standard_errors']} | {c['largest_decile_gap']} |"
        )


if __name__ == "__main__":
    main()
