"""Feature build speed and memory on simulated event logs of given sizes, beside two RFM peers.

For each size N the script simulates enough customers, keeps the first N events (whole
customers, in file order), and builds the features at the day after the last event, so every
event counts. Each build runs in a fresh subprocess, so its peak RSS is its own; the report
gives events per second (median of the repeats), peak RSS, the RSS of the same process after
imports (the floor), and the size of the events in memory (Arrow) and on disk (Parquet). A
second row per size caps DuckDB's memory at a share of the events' Arrow size.

Peers, on the same Parquet file and the same cutoff, each in its own fresh subprocess and with
the same number of repeats: pymc-marketing's ``clv.utils.rfm_summary`` and lifetimes'
``utils.summary_data_from_transaction_data`` (``time_unit``/``freq`` "D", the cutoff as
``observation_period_end``). They compute only the RFM subset (frequency, recency, T, monetary
value) of the purchases, after ``pd.read_parquet`` of the three columns they need with the
purchases before the cutoff filtered in the read; the read and the summary are timed apart,
imports are not timed (as for our build). Their ratio is peer seconds / our build's seconds (no
memory cap, same run): our build computes every feature (~80 columns, RFM scores, stages) from
all events, so the ratio is not like for like, in the peers' favour. Their output is checked
against our features where the definitions meet (customers with a purchase, T, recency) and the
differences are written down where they do not (frequency counts purchase days, monetary value
leaves out the first purchase day). A peer that is not installed, is over ``--peer-max-events``,
is projected past the timeout or the free memory from the size before, fails, or times out
(``--peer-timeout``) is recorded with the reason; the run goes on.

Scaling: per method, the log-log slope of seconds against events between consecutive sizes
(1 = linear) and the time ratio per 10x events; the plot ``feature_speed_scaling.png`` (under
``--plots``, overwritten each run) shows seconds and peak RSS against events, log-log.

    .venv/bin/python benchmarks/feature_speed.py --events 1000000 10000000 50000000

A quick check: ``--events 200000 1000000 --repeats 1 --out /tmp/fs-out --plots /tmp/fs-plots``.

Results: one JSON file per run under benchmarks/results/, and Markdown tables on stdout (the
last one: events | method | seconds | events/s | peak RSS MB | ratio to ours).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
EVENTS_PER_CUSTOMER_GUESS = 20

OURS = "ours"
OURS_CAPPED = "ours, DuckDB memory cap"
# peer name -> (module to find, distribution for the version, function called)
PEERS: dict[str, tuple[str, str, str]] = {
    "pymc-marketing": ("pymc_marketing", "pymc-marketing", "pymc_marketing.clv.utils.rfm_summary"),
    "lifetimes": (
        "lifetimes",
        "lifetimes",
        "lifetimes.utils.summary_data_from_transaction_data",
    ),
}
# Our feature columns the peers' RFM subset is checked against.
RFM_FEATURES = (
    "customer_id",
    "n_purchases",
    "days_since_first_purchase",
    "days_since_last_purchase",
    "revenue_total",
    "avg_order_value",
)

# Peak memory is VmHWM from /proc: getrusage's ru_maxrss survives exec on Linux, so a child
# would report its parent's high-water mark. The optional 4th argument saves the RFM columns
# after the measurement (for the agreement check), so it changes neither time nor peak.
CHILD = """
import json, sys, time
def hwm_kb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
from lifecycle.features.build import build_features
path, cutoff, limit = sys.argv[1], sys.argv[2], sys.argv[3] or None
save = sys.argv[4] if len(sys.argv) > 4 else ""
floor_kb = hwm_kb()
began = time.perf_counter()
frame = build_features(path, cutoffs=cutoff, memory_limit=limit)
seconds = time.perf_counter() - began
peak_kb = hwm_kb()
if save:
    frame[sys.argv[5].split(",")].to_parquet(save)
print(json.dumps({"seconds": seconds, "rows": len(frame), "columns": len(frame.columns),
                  "peak_rss_kb": peak_kb, "floor_rss_kb": floor_kb}))
"""

# A peer as a user would run it: read the three columns it needs with the purchases before the
# cutoff filtered in the Parquet scan, then summarise. Imports are not timed.
PEER_CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")  # pandas 3 deprecation notes, "drops timezone information"
def hwm_kb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
peer, path, cutoff, purchase_events, save = sys.argv[1:6]
if peer == "pymc-marketing":
    from pymc_marketing.clv.utils import rfm_summary
    def summarise(df, end):
        return rfm_summary(df, "customer_id", "event_ts", monetary_value_col="revenue",
                           observation_period_end=end, time_unit="D")
elif peer == "lifetimes":
    from lifetimes.utils import summary_data_from_transaction_data
    def summarise(df, end):
        return summary_data_from_transaction_data(
            df, "customer_id", "event_ts", monetary_value_col="revenue",
            observation_period_end=end, freq="D")
else:
    raise SystemExit(f"unknown peer {peer}")
import pandas as pd
end = pd.Timestamp(cutoff)
floor_kb = hwm_kb()
began = time.perf_counter()
df = pd.read_parquet(path, columns=["customer_id", "event_ts", "revenue"],
                     filters=[("event_type", "in", json.loads(purchase_events)),
                              ("event_ts", "<", end)])
read_seconds = time.perf_counter() - began
summary = summarise(df, end)
seconds = time.perf_counter() - began
peak_kb = hwm_kb()
if save:
    if "customer_id" not in summary.columns:
        summary = summary.reset_index()
    summary[["customer_id", "frequency", "recency", "T", "monetary_value"]].to_parquet(save)
print(json.dumps({"seconds": seconds, "read_seconds": read_seconds,
                  "summary_seconds": seconds - read_seconds, "purchases": len(df),
                  "rows": len(summary), "peak_rss_kb": peak_kb, "floor_rss_kb": floor_kb}))
"""

# Independent reference for the peers' own definitions: purchase days per customer (UTC
# calendar days) and the mean purchase revenue per repeat day (the first day left out).
REFERENCE_SQL = """
WITH d AS (
  SELECT CAST(customer_id AS VARCHAR) AS customer_id, CAST(event_ts AS DATE) AS day,
         sum(coalesce(revenue, 0)) AS revenue
  FROM read_parquet($path)
  WHERE event_type IN (SELECT unnest($purchases)) AND event_ts < $cutoff::TIMESTAMPTZ
  GROUP BY ALL
), r AS (
  SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY day) AS k FROM d
)
SELECT customer_id, count(*) AS purchase_days,
       coalesce(avg(CASE WHEN k > 1 THEN revenue END), 0) AS repeat_day_mean_revenue
FROM r GROUP BY customer_id
"""


def log(message: str) -> None:
    """Write a progress line to stderr (stdout is the Markdown report)."""
    print(message, file=sys.stderr, flush=True)


def simulated_log(n_events: int, workdir: Path, seed: int) -> Path:
    """Return a canonical Parquet file with exactly ``n_events`` simulated events."""
    from lifecycle.features.simulate import simulate

    target = workdir / f"events_{n_events}.parquet"
    if target.exists():
        return target
    customers = max(1000, n_events // EVENTS_PER_CUSTOMER_GUESS)
    while True:
        sim_dir = workdir / f"sim_{customers}"
        if not (sim_dir / "events.parquet").exists():
            log(f"simulating {customers:,} customers ...")
            simulate(customers, seed=seed, out_dir=sim_dir, days=730)
        available = pq.ParquetFile(sim_dir / "events.parquet").metadata.num_rows
        if available >= n_events:
            break
        customers = int(customers * n_events / available * 1.1) + 1
    table = pq.read_table(sim_dir / "events.parquet").slice(0, n_events)
    pq.write_table(table, target, compression="zstd")
    return target


def build_cutoff(path: Path) -> str:
    """Return the cutoff of every measurement: midnight (UTC) after the last event."""
    from lifecycle.features.build import event_time_range

    _, last = event_time_range(path)
    return (last.normalize() + pd.Timedelta(days=1)).isoformat()


def measure(
    path: Path, repeats: int, memory_limit: str | None = None, save: Path | None = None
) -> dict[str, object]:
    """Build features ``repeats`` times in fresh processes; return the measurements.

    With ``save``, the first repeat also writes our RFM columns there, after its measurement.
    """
    cutoff = build_cutoff(path)
    runs = []
    for i in range(repeats):
        extra = [str(save), ",".join(RFM_FEATURES)] if save is not None and i == 0 else []
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), cutoff, memory_limit or "", *extra],
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


def purchase_events() -> list[str]:
    """Event types that count as purchases in the shipped config (as in our build)."""
    from lifecycle.features.config import LifecycleConfig

    return list(LifecycleConfig().stages.purchase_events)


def available_mb() -> float:
    """Memory the kernel could hand out now without swapping (MemAvailable), in MB."""
    with open("/proc/meminfo") as meminfo:
        kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable"))
    return kb / 1024


def failure_reason(returncode: int, stderr: str) -> str:
    """Say why a child process failed: its signal or exit status and its last stderr line."""
    if returncode < 0:
        reason = f"killed by signal {-returncode}"
        if returncode == -9:
            reason += " (SIGKILL: most likely the out-of-memory killer)"
    else:
        reason = f"exit status {returncode}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"{reason}: {lines[-1][:300]}" if lines else reason


def peer_skip_reason(
    peer: str, n_events: int, earlier: list[dict[str, object]], args: argparse.Namespace
) -> str | None:
    """Why ``peer`` should not run at ``n_events`` (None: run it), from its smaller sizes."""
    if importlib.util.find_spec(PEERS[peer][0]) is None:
        return (
            f"{PEERS[peer][1]} is not installed (uv sync --group bench for lifetimes, "
            "--extra baselines for pymc-marketing)"
        )
    if n_events > args.peer_max_events:
        return f"{n_events:,} events is over --peer-max-events {args.peer_max_events:,}"
    smaller = sorted((r for r in earlier if r["events"] < n_events), key=lambda r: r["events"])
    for r in smaller:
        if r["status"] in ("failed", "timeout"):
            return f"{r['status']} at {r['events']:,} events: {r['reason']}"
    done = [r for r in smaller if r["status"] == "ok"]
    if not done:
        return None
    last = done[-1]
    grow = n_events / last["events"]
    wall = last["process_seconds_max"] + last["seconds_median"] * (grow - 1)
    if wall > args.peer_timeout:
        return (
            f"projected {wall:,.0f} s per run (linear from {last['events']:,} events) is over "
            f"--peer-timeout {args.peer_timeout:g} s"
        )
    floor = last["floor_rss_mb"]
    peak = floor + (last["peak_rss_mb"] - floor) * grow
    free = available_mb()
    if peak > 0.9 * free:
        return (
            f"projected peak RSS {peak:,.0f} MB (linear from {last['events']:,} events) is over "
            f"90% of the {free:,.0f} MB available"
        )
    return None


def measure_peer(
    peer: str,
    path: Path,
    cutoff: str,
    repeats: int,
    timeout: float,
    save: Path | None,
) -> dict[str, object]:
    """Run ``peer`` ``repeats`` times in fresh processes; never raise, report failures."""
    n_events = pq.ParquetFile(path).metadata.num_rows
    head: dict[str, object] = {"events": n_events, "method": peer, "function": PEERS[peer][2]}
    runs, walls = [], []
    for i in range(repeats):
        command = [
            sys.executable,
            "-c",
            PEER_CHILD,
            peer,
            str(path),
            cutoff,
            json.dumps(purchase_events()),
            str(save) if save is not None and i == 0 else "",
        ]
        began = time.perf_counter()
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            reason = f"repeat {i + 1} gave no result within {timeout:g} s (imports included)"
            return {**head, "status": "timeout", "reason": reason}
        except OSError as exc:
            return {**head, "status": "failed", "reason": f"could not start: {exc}"}
        walls.append(time.perf_counter() - began)
        if out.returncode != 0:
            return {
                **head,
                "status": "failed",
                "reason": failure_reason(out.returncode, out.stderr),
            }
        try:
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            return {
                **head,
                "status": "failed",
                "reason": f"no result line in {out.stdout[-200:]!r}",
            }
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        **head,
        "status": "ok",
        "reason": None,
        "purchases_read": runs[0]["purchases"],
        "customers_out": runs[0]["rows"],
        "seconds_read_median": round(statistics.median(r["read_seconds"] for r in runs), 3),
        "seconds_summary_median": round(statistics.median(r["summary_seconds"] for r in runs), 3),
        "seconds_median": round(seconds, 3),
        "seconds_all": [round(r["seconds"], 3) for r in runs],
        "events_per_second": round(n_events / seconds),
        "peak_rss_mb": round(max(r["peak_rss_kb"] for r in runs) / 1024, 1),
        "floor_rss_mb": round(min(r["floor_rss_kb"] for r in runs) / 1024, 1),
        "process_seconds_max": round(max(walls), 1),
    }


def reference_days(path: Path, cutoff: str) -> pd.DataFrame:
    """Purchase days and mean revenue per repeat purchase day per customer, from DuckDB."""
    from lifecycle.features.build import connect

    con = connect()
    try:
        params = {"path": str(path), "purchases": purchase_events(), "cutoff": cutoff}
        return con.execute(REFERENCE_SQL, params).df().set_index("customer_id")
    finally:
        con.close()


def _check(
    name: str, peer: pd.Series, other: pd.Series, note: str, atol: float = 1e-6
) -> dict[str, object]:
    """Compare two aligned columns: share equal (within ``atol``), largest gap, a note."""
    a = peer.to_numpy(dtype=float)
    b = other.to_numpy(dtype=float)
    same = np.isclose(a, b, rtol=1e-9, atol=atol) | (np.isnan(a) & np.isnan(b))
    gap = np.abs(a - b)
    return {
        "check": name,
        "customers": len(a),
        "equal": int(same.sum()),
        "equal_share": round(float(same.mean()), 6) if len(a) else None,
        "max_abs_diff": round(float(np.nanmax(gap)), 6) if len(a) else None,
        "note": note,
    }


def agreement(ours_file: Path, peer_file: Path, reference: pd.DataFrame) -> dict[str, object]:
    """Check a peer's RFM summary against our features (and its own definitions)."""
    ours = pd.read_parquet(ours_file)
    buyers = ours[ours["n_purchases"] > 0].set_index("customer_id")
    peer = pd.read_parquet(peer_file).set_index("customer_id")
    common = buyers.index.intersection(peer.index)
    b, p = buyers.loc[common], peer.loc[common]
    ref = reference.reindex(common)
    first_day = np.ceil(b["days_since_first_purchase"])
    checks = [
        _check(
            "T == ceil(days_since_first_purchase)",
            p["T"],
            first_day,
            "T counts whole days from the first purchase's day to the cutoff's day; ours is "
            "fractional days to the cutoff (midnight), so T is ours rounded up",
        ),
        _check(
            "recency == ceil(days_since_first_purchase) - ceil(days_since_last_purchase)",
            p["recency"],
            first_day - np.ceil(b["days_since_last_purchase"]),
            "recency is the peers' first-to-last purchase day span, not days since the last "
            "purchase (ours: days_since_last_purchase)",
        ),
        _check(
            "frequency == n_purchases - 1",
            p["frequency"],
            b["n_purchases"] - 1,
            "differs by definition: frequency counts repeat purchase DAYS (purchases on one "
            "calendar day are one), n_purchases counts purchase events; we have no per-day "
            "count. Equal exactly where a customer never bought twice on one day",
        ),
        _check(
            "frequency == purchase days - 1 (DuckDB reference)",
            p["frequency"],
            ref["purchase_days"] - 1,
            "the peers' own definition, recomputed in SQL from the same events",
        ),
        _check(
            "monetary_value == avg_order_value",
            p["monetary_value"],
            b["avg_order_value"],
            "differs by definition: monetary_value is the mean revenue per repeat purchase day "
            "(the first day left out, 0 without a repeat, refunds ignored); avg_order_value "
            "is revenue_total / n_purchases over every purchase",
            atol=1e-4,
        ),
        _check(
            "monetary_value == mean revenue per repeat day (DuckDB reference)",
            p["monetary_value"],
            ref["repeat_day_mean_revenue"],
            "the peers' own definition, recomputed in SQL from the same events",
            atol=1e-4,
        ),
    ]
    differ = p.index[p["frequency"].to_numpy() != b["n_purchases"].to_numpy() - 1]
    sample = list(differ[:3]) + [c for c in p.index[p["frequency"] > 0][:3] if c not in differ]
    examples = [
        {
            "customer_id": str(c),
            "peer": {k: round(float(p.at[c, k]), 4) for k in ("frequency", "recency", "T")}
            | {"monetary_value": round(float(p.at[c, "monetary_value"]), 4)},
            "ours": {k: round(float(b.at[c, k]), 4) for k in RFM_FEATURES[1:]},
        }
        for c in sample[:4]
    ]
    return {
        "customers_with_purchase": {
            "ours": len(buyers),
            "peer": len(peer),
            "only_ours": len(buyers.index.difference(peer.index)),
            "only_peer": len(peer.index.difference(buyers.index)),
        },
        "checks": checks,
        "examples": examples,
    }


def peers_alike(files: dict[str, Path]) -> dict[str, object]:
    """Largest difference between the peers' summaries, column by column."""
    (name_a, file_a), (name_b, file_b) = list(files.items())[:2]
    a = pd.read_parquet(file_a).set_index("customer_id").sort_index()
    b = pd.read_parquet(file_b).set_index("customer_id").sort_index()
    same_customers = a.index.equals(b.index)
    diffs = {}
    if same_customers:
        diffs = {c: float(np.nanmax(np.abs(a[c].to_numpy() - b[c].to_numpy()))) for c in a}
    return {"peers": [name_a, name_b], "same_customers": same_customers, "max_abs_diff": diffs}


def scaling(series: dict[str, list[dict[str, float]]]) -> dict[str, object]:
    """How seconds (and peak RSS) grow with events, per method.

    ``loglog_slope`` between consecutive sizes is d log(seconds) / d log(events): 1 is linear,
    below 1 sublinear (fixed costs still weigh), above 1 superlinear. ``seconds_x_per_10x`` is
    the same slope as a time factor for ten times the events.
    """
    out: dict[str, object] = {}
    for method, points in series.items():
        pts = sorted(points, key=lambda p: p["events"])
        steps = []
        for lo, hi in itertools.pairwise(pts):
            if hi["events"] <= lo["events"]:
                continue
            slope = math.log(hi["seconds"] / lo["seconds"]) / math.log(hi["events"] / lo["events"])
            steps.append(
                {
                    "from_events": lo["events"],
                    "to_events": hi["events"],
                    "seconds_ratio": round(hi["seconds"] / lo["seconds"], 3),
                    "loglog_slope": round(slope, 3),
                    "seconds_x_per_10x": round(10**slope, 2),
                    "peak_rss_ratio": round(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3),
                }
            )
        fit = None
        if len({p["events"] for p in pts}) >= 2:
            x = np.log([p["events"] for p in pts])
            y = np.log([p["seconds"] for p in pts])
            fit = round(float(np.polyfit(x, y, 1)[0]), 3)
        out[method] = {"points": pts, "steps": steps, "fit_loglog_slope": fit}
    return out


def plot_scaling(series: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Draw seconds and peak RSS against events (log-log), one line per method, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = Figure(figsize=(11, 4.5), dpi=120)
    ax_time, ax_rss = fig.subplots(1, 2)
    styles = {  # fixed per method, so plots of different runs compare at a glance
        OURS: ("-", "o", "C0"),
        OURS_CAPPED: ("--", "o", "C1"),
        "pymc-marketing": ("-.", "s", "C2"),
        "lifetimes": ("-.", "^", "C3"),
    }
    for method, points in series.items():
        pts = sorted(points, key=lambda p: p["events"])
        x = [p["events"] for p in pts]
        line, marker, color = styles.get(method, ("-.", "v", "C4"))
        for ax, key in ((ax_time, "seconds"), (ax_rss, "peak_rss_mb")):
            ax.plot(x, [p[key] for p in pts], line, marker=marker, color=color, label=method)
    ours = sorted(series.get(OURS, []), key=lambda p: p["events"])
    if len(ours) >= 2:
        x0, y0, x1 = ours[0]["events"], ours[0]["seconds"], ours[-1]["events"]
        ax_time.plot(
            [x0, x1], [y0, y0 * x1 / x0], ":", color="grey", label="linear from ours' first size"
        )
    ax_time.set(
        xscale="log", yscale="log", xlabel="events", ylabel="seconds (median)", title="Time"
    )
    ax_rss.set(
        xscale="log", yscale="log", xlabel="events", ylabel="peak RSS MB", title="Peak memory"
    )
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    events = FuncFormatter(lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k")
    sizes = sorted({p["events"] for points in series.values() for p in points})
    for ax in (ax_time, ax_rss):
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(events)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Feature pipeline scaling: our full build vs RFM-only peers")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    fig.clear()
    return path


def version(distribution: str) -> str | None:
    """Installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


NOTES = {
    "ratio_to_ours": (
        "peer seconds (read + summary) / our build's seconds (no memory cap), same run and "
        "size. Our build computes every feature (81 columns: ~80 features, RFM scores, "
        "segments, stages) from all events; the peers only frequency, recency, T and monetary "
        "value from the purchases. Not like for like, in the peers' favour."
    ),
    "peer_work": (
        "pd.read_parquet of customer_id, event_ts and revenue with the filters event_type in "
        "the purchase events and event_ts < cutoff (pushed into the Parquet scan), then the "
        "summary with the cutoff as observation_period_end and day periods; seconds_read and "
        "seconds_summary are medians each on its own. events_per_second counts all events "
        "in the file."
    ),
    "timing": (
        "imports are not timed (ours neither); peak RSS includes them (floor_rss_mb is the "
        "RSS after imports). DuckDB uses every core; the peers' summary is single-threaded "
        "pandas, their Parquet read uses Arrow's threads."
    ),
    "definitions": (
        "customers with a purchase and T (= ceil(days_since_first_purchase), the cutoff being "
        "midnight) are comparable; frequency counts repeat purchase days (ours: n_purchases "
        "counts purchase events); recency is the first-to-last purchase day span; "
        "monetary_value is the mean revenue per repeat purchase day (first day left out, "
        "refunds ignored) where ours has avg_order_value over every purchase and "
        "revenue_total / net_revenue_total. See each peer's agreement checks."
    ),
}


def markdown(
    results: list[dict[str, object]],
    peers: list[dict[str, object]],
    scaled: dict[str, object],
) -> str:
    """Return the Markdown tables: our build in detail, scaling, and the comparison."""
    lines = [
        "| events | DuckDB memory limit | customers | seconds (median) | events/s | peak RSS MB"
        " | RSS after imports MB"
        " | events in memory (Arrow) MB | as CSV MB (est.) | Parquet MB |",
        "|" + "---:|" * 10,
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['memory_limit'] or 'none'} | {r['customers_out']:,} | "
            f"{r['seconds_median']} | "
            f"{r['events_per_second']:,} | {r['peak_rss_mb']} | {r['floor_rss_mb']} | "
            f"{r['events_arrow_mb']} | {r['events_csv_mb_estimate']} | {r['events_parquet_mb']} |"
        )
    if any(info["steps"] for info in scaled.values()):
        lines += [
            "",
            "| method | events | seconds x | log-log slope | seconds x per 10x events |"
            " peak RSS x |",
            "|---|---|---:|---:|---:|---:|",
        ]
    for method, info in scaled.items():
        for s in info["steps"]:
            lines.append(
                f"| {method} | {s['from_events']:,} -> {s['to_events']:,} | "
                f"{s['seconds_ratio']} | {s['loglog_slope']} | {s['seconds_x_per_10x']} | "
                f"{s['peak_rss_ratio']} |"
            )
    ours_seconds = {r["events"]: r["seconds_median"] for r in results if not r["memory_limit"]}
    rows = []
    for r in results:
        method = OURS if not r["memory_limit"] else f"{OURS_CAPPED} ({r['memory_limit']})"
        rows.append((r["events"], 0 if not r["memory_limit"] else 1, method, r))
    for i, p in enumerate(peers):
        rows.append((p["events"], 2 + i % len(PEERS), p["method"], p))
    lines += [
        "",
        "| events | method | seconds | events/s | peak RSS MB | ratio to ours |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for events, _, method, r in sorted(rows, key=lambda row: row[:2]):
        if r.get("status", "ok") != "ok":
            lines.append(f"| {events:,} | {method} | {r['status']}: {r['reason']} | | | |")
            continue
        seconds = f"{r['seconds_median']}"
        if "seconds_read_median" in r:
            seconds += f" (read {r['seconds_read_median']} + RFM {r['seconds_summary_median']})"
        ratio = r["seconds_median"] / ours_seconds[events] if events in ours_seconds else None
        lines.append(
            f"| {events:,} | {method} | {seconds} | {r['events_per_second']:,} | "
            f"{r['peak_rss_mb']} | {f'{ratio:.2f}' if ratio is not None else ''} |"
        )
    return "\n".join(lines)


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
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=list(PEERS),
        default=list(PEERS),
        help="RFM peers to run beside our build (none: --peers with no name)",
    )
    parser.add_argument(
        "--peer-max-events",
        type=int,
        default=50_000_000,
        help="skip the peers on logs with more events than this",
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=900,
        help="seconds one peer run may take (imports included) before it is stopped",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--plots", type=Path, default=HERE / "plots", help="folder of the scaling PNG"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, object]] = []
    peers: list[dict[str, object]] = []
    peer_pairs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="feature_speed-") as scratch:
        for n in args.events:
            path = simulated_log(n, args.workdir, args.seed)
            began = time.perf_counter()
            ours_file = Path(scratch) / f"ours_{n}.parquet"
            result = measure(path, args.repeats, save=ours_file if args.peers else None)
            results.append(result)
            if args.memory_limit_share > 0:
                cap_mb = max(64, int(result["events_arrow_mb"] * args.memory_limit_share))
                results.append(measure(path, args.repeats, f"{cap_mb}MB"))
            log(
                f"{n:,} events: {result['events_per_second']:,} events/s, "
                f"peak RSS {result['peak_rss_mb']} MB ({time.perf_counter() - began:.0f} s)"
            )
            reference = None
            peer_files: dict[str, Path] = {}
            for peer in args.peers:
                earlier = [p for p in peers if p["method"] == peer]
                skip = peer_skip_reason(peer, result["events"], earlier, args)
                if skip:
                    row: dict[str, object] = {
                        "events": result["events"],
                        "method": peer,
                        "function": PEERS[peer][2],
                        "status": "skipped",
                        "reason": skip,
                    }
                else:
                    began = time.perf_counter()
                    peer_file = Path(scratch) / f"{peer}_{n}.parquet"
                    row = measure_peer(
                        peer, path, result["cutoff"], args.repeats, args.peer_timeout, peer_file
                    )
                if row["status"] == "ok":
                    row["ours_seconds_median"] = result["seconds_median"]
                    row["ratio_to_ours"] = round(
                        row["seconds_median"] / result["seconds_median"], 2
                    )
                    try:
                        if reference is None:
                            reference = reference_days(path, result["cutoff"])
                        row["agreement"] = agreement(ours_file, peer_file, reference)
                        peer_files[peer] = peer_file
                    except Exception as exc:  # a check must not end the run
                        row["agreement"] = {"error": f"{type(exc).__name__}: {exc}"}
                    log(
                        f"{n:,} events, {peer}: {row['events_per_second']:,} events/s, "
                        f"peak RSS {row['peak_rss_mb']} MB, {row['ratio_to_ours']}x ours "
                        f"({time.perf_counter() - began:.0f} s)"
                    )
                else:
                    log(f"{n:,} events, {peer}: {row['status']}: {row['reason']}")
                peers.append(row)
            if len(peer_files) >= 2:
                try:
                    peer_pairs.append({"events": result["events"], **peers_alike(peer_files)})
                except Exception as exc:  # a check must not end the run
                    peer_pairs.append({"events": result["events"], "error": str(exc)})
    series: dict[str, list[dict[str, float]]] = {}
    for r in results:
        method = OURS if not r["memory_limit"] else OURS_CAPPED
        series.setdefault(method, []).append(
            {"events": r["events"], "seconds": r["seconds_median"], "peak_rss_mb": r["peak_rss_mb"]}
        )
    for p in peers:
        if p["status"] == "ok":
            series.setdefault(p["method"], []).append(
                {
                    "events": p["events"],
                    "seconds": p["seconds_median"],
                    "peak_rss_mb": p["peak_rss_mb"],
                }
            )
    scaled = scaling(series)
    plot: str | None = None
    try:
        plot = str(plot_scaling(series, args.plots / "feature_speed_scaling.png"))
        log(f"plot: {plot}")
    except Exception as exc:  # the numbers matter more than the picture
        log(f"plot failed: {type(exc).__name__}: {exc}")
    report = {
        "benchmark": "feature_speed",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "pandas": pd.__version__,
            "pyarrow": version("pyarrow"),
            **{PEERS[name][1]: version(PEERS[name][1]) for name in PEERS},
        },
        "settings": {
            "repeats": args.repeats,
            "memory_limit_share": args.memory_limit_share,
            "peers": args.peers,
            "peer_max_events": args.peer_max_events,
            "peer_timeout_s": args.peer_timeout,
            "seed": args.seed,
        },
        "results": results,
        "peers": peers,
        "peers_alike": peer_pairs,
        "scaling": scaled,
        "plot": plot,
        "notes": NOTES,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.out / f"feature_speed-{stamp}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results: {target}")
    print(markdown(results, peers, scaled))


if __name__ == "__main__":
    main()
