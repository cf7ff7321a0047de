"""Feature build speed and memory on simulated event logs of given sizes.

For each size N the script simulates enough customers, keeps the first N events (whole
customers, in file order), and builds the features at the day after the last event, so every
event counts. Each build runs in a fresh subprocess, so its peak RSS is its own; the report
gives events per second (median of the repeats), peak RSS, the RSS of the same process after
imports (the floor), and the size of the events in memory (Arrow) and on disk (Parquet).

    .venv/bin/python benchmarks/feature_speed.py --events 1000000 10000000

Results: one JSON file per run under benchmarks/results/, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
EVENTS_PER_CUSTOMER_GUESS = 20

# Peak memory is VmHWM from /proc: getrusage's ru_maxrss survives exec on Linux, so a child
# would report its parent's high-water mark.
CHILD = """
import json, sys, time
def hwm_kb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
from features.build import build_features
path, cutoff, limit = sys.argv[1], sys.argv[2], sys.argv[3] or None
floor_kb = hwm_kb()
began = time.perf_counter()
frame = build_features(path, cutoffs=cutoff, memory_limit=limit)
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "rows": len(frame), "columns": len(frame.columns),
                  "peak_rss_kb": hwm_kb(), "floor_rss_kb": floor_kb}))
"""


def simulated_log(n_events: int, workdir: Path, seed: int) -> Path:
    """Return a canonical Parquet file with exactly ``n_events`` simulated events."""
    from features.simulate import simulate

    target = workdir / f"events_{n_events}.parquet"
    if target.exists():
        return target
    customers = max(1000, n_events // EVENTS_PER_CUSTOMER_GUESS)
    while True:
        sim_dir = workdir / f"sim_{customers}"
        if not (sim_dir / "events.parquet").exists():
            print(f"simulating {customers:,} customers ...", file=sys.stderr)
            simulate(customers, seed=seed, out_dir=sim_dir, days=730)
        available = pq.ParquetFile(sim_dir / "events.parquet").metadata.num_rows
        if available >= n_events:
            break
        customers = int(customers * n_events / available * 1.1) + 1
    table = pq.read_table(sim_dir / "events.parquet").slice(0, n_events)
    pq.write_table(table, target, compression="zstd")
    return target


def measure(path: Path, repeats: int, memory_limit: str | None = None) -> dict[str, object]:
    """Build features ``repeats`` times in fresh processes; return the measurements."""
    from features.build import event_time_range

    _, last = event_time_range(path)
    cutoff = (last.normalize() + pd.Timedelta(days=1)).isoformat()
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), cutoff, memory_limit or ""],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = pq.read_table(path)
    seconds = statistics.median(r["seconds"] for r in runs)
    n_events = table.num_rows
    csv_bytes = len(table.slice(0, 100_000).to_pandas().to_csv(index=False).encode())
    csv_mb = csv_bytes * n_events / min(n_events, 100_000) / 2**20
    return {
        "events": n_events,
        "memory_limit": memory_limit,
        "customers_out": runs[0]["rows"],
        "feature_columns": runs[0]["columns"],
        "seconds_median": round(seconds, 3),
        "seconds_all": [round(r["seconds"], 3) for r in runs],
        "events_per_second": round(n_events / seconds),
        "peak_rss_mb": round(max(r["peak_rss_kb"] for r in runs) / 1024, 1),
        "floor_rss_mb": round(min(r["floor_rss_kb"] for r in runs) / 1024, 1),
        "events_arrow_mb": round(table.nbytes / 2**20, 1),
        "events_parquet_mb": round(path.stat().st_size / 2**20, 1),
        "events_csv_mb_estimate": round(csv_mb, 1),
        "cutoff": cutoff,
    }


def main() -> None:
    """Run the benchmark for each requested size and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--memory-limit-share",
        type=float,
        default=0.5,
        help="also run with DuckDB's memory capped at this share of the events' size (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.events:
        path = simulated_log(n, args.workdir, args.seed)
        began = time.perf_counter()
        result = measure(path, args.repeats)
        results.append(result)
        if args.memory_limit_share > 0:
            cap_mb = max(64, int(result["events_arrow_mb"] * args.memory_limit_share))
            results.append(measure(path, args.repeats, f"{cap_mb}MB"))
        print(
            f"{n:,} events: {result['events_per_second']:,} events/s, "
            f"peak RSS {result['peak_rss_mb']} MB ({time.perf_counter() - began:.0f} s)",
            file=sys.stderr,
        )
    report = {
        "benchmark": "feature_speed",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"feature_speed-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        "| events | DuckDB memory limit | customers | seconds (median) | events/s | peak RSS MB"
        " | RSS after imports MB"
        " | events in memory (Arrow) MB | as CSV MB (est.) | Parquet MB |"
    )
    print("|" + "---:|" * 10)
    for r in results:
        print(
            f"| {r['events']:,} | {r['memory_limit'] or 'none'} | {r['customers_out']:,} | "
            f"{r['seconds_median']} | "
            f"{r['events_per_second']:,} | {r['peak_rss_mb']} | {r['floor_rss_mb']} | "
            f"{r['events_arrow_mb']} | {r['events_csv_mb_estimate']} | {r['events_parquet_mb']} |"
        )


if __name__ == "__main__":
    main()
