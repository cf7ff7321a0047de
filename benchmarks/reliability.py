"""Reliability under operations: champion swaps under load, a soak, and kills at every write.

What a site-reliability engineer would page on, measured on one world (`make bench-reliability`):

1. **Swaps under load.** A world is trained twice (two runs, two versions of each model); the
   service serves the first. A steady open-loop load at a share of the service's measured
   closed-loop throughput runs while the second run is promoted and then rolled back, each
   followed by ``POST /reload`` (the poll would notice too, a few seconds later). Reported:
   failed requests (any non-200), the time from each registry move to the first answer
   naming the new versions, and p99 against the steady p99 before the move in two windows:
   the swap itself (the load and check ``/model_info`` reports, plus one second), and the
   whole phase after the move, which also holds the ``lifecycle`` command run on the same
   cores (its imports take a core for seconds; in production it runs elsewhere).
2. **Soak.** The same load for ``--soak`` seconds; the server's resident memory (its process
   tree) is sampled every 5 s: growth from the first to the last minute.
3. **Kills at the write.** ``validate``, ``features`` and ``score`` are run onto an existing good
   output and killed with SIGKILL the moment their temporary file appears (and, in other trials,
   after a random delay); the old output must be byte-identical afterwards, with no partial
   file at the target.

Writes <out>/reliability-<UTC time>.json (default benchmarks/results) and prints a summary.
``--quick``: a 2,000-customer world, 20 s of load per phase, a 60 s soak, 3 kills per command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_latency import (  # noqa: E402  # the same world builder and process helpers
    BIN,
    RESULTS,
    build_world,
    free_port,
    process_table,
    process_tree,
)

CACHE = ROOT / "benchmarks" / ".cache"
KEY = "bench-key"
RNG = random.Random(7)  # noqa: S311  # which customer each request asks for; when a kill lands


def log(message: str) -> None:
    """Print a progress line on standard error."""
    print(f"[reliability] {message}", file=sys.stderr, flush=True)


def cli(folder: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run one ``lifecycle`` command with ``--json`` in ``folder``; return its summary."""
    done = subprocess.run(
        [str(BIN / "lifecycle"), *args, "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"`lifecycle {' '.join(args)}` failed:\n{(done.stdout + done.stderr)[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children, MiB (Linux /proc)."""
    table = process_table()
    pids = process_tree(pid, table) if table else {pid}
    total = 0
    for p in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{p}/statm").read_text().split()
            total += int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    return total / 2**20


@contextmanager
def service(folder: Path, env: dict[str, str], port: int, poll: int) -> Iterator[subprocess.Popen]:
    """Start ``lifecycle serve`` on the world's lookup; yield the process once /readyz is 200."""
    env = env | {"LIFECYCLE_API_KEY": KEY, "LIFECYCLE_RELOAD_SECONDS": str(poll)}
    args = ["serve", "--lookup", "scores.parquet", "--port", str(port)]
    proc = subprocess.Popen(
        [str(BIN / "lifecycle"), *args],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "serve.log", "w"),  # closed with the process
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                sys.exit(f"the service exited: {(folder / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
        else:
            sys.exit("the service did not become ready in 180 s")
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Sample:
    """One request of the load: when it started, how long it took, what answered."""

    start: float
    ms: float
    status: int
    versions: str


class Load:
    """Open-loop load: one request every ``1 / rate`` seconds, whatever the answers' latency."""

    def __init__(self, url: str, ids: list[str], rate: float, workers: int = 16) -> None:
        self.url, self.ids, self.rate = url, ids, rate
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers)
        self._client = httpx.Client(
            timeout=15, headers={"Authorization": f"Bearer {KEY}"}, limits=httpx.Limits(
                max_connections=workers, max_keepalive_connections=workers
            )
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _one(self, customer: str) -> None:
        began = time.monotonic()
        status, versions = 0, ""
        try:
            answer = self._client.post(self.url, json={"customer_id": customer})
            status = answer.status_code
            if status == 200:
                versions = json.dumps(answer.json().get("model_versions"), sort_keys=True)
        except httpx.HTTPError:
            status = -1
        with self._lock:
            self.samples.append(Sample(began, (time.monotonic() - began) * 1e3, status, versions))

    def _run(self) -> None:
        step, due = 1.0 / self.rate, time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one, RNG.choice(self.ids))
            due += step
            time.sleep(max(0.0, due - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()

    def window(self, start: float, end: float) -> list[Sample]:
        """Return the samples that started in ``[start, end)``."""
        with self._lock:
            return [s for s in self.samples if start <= s.start < end]


def p99(samples: list[Sample]) -> float | None:
    """Return the 99th percentile latency of the successful samples, ms."""
    ms = [s.ms for s in samples if s.status == 200]
    return float(np.percentile(ms, 99)) if ms else None


def throughput(url: str, ids: list[str], seconds: float, clients: int = 4) -> float:
    """Closed-loop requests per second with ``clients`` at once (the service's capacity)."""
    done = 0
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker() -> None:
        nonlocal done
        with httpx.Client(timeout=15, headers={"Authorization": f"Bearer {KEY}"}) as client:
            while time.monotonic() < end:
                if client.post(url, json={"customer_id": RNG.choice(ids)}).status_code == 200:
                    with lock:
                        done += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done / seconds


def model_info(base: str) -> dict[str, Any]:
    """Return the service's ``/model_info`` answer."""
    info = httpx.post(
        f"{base}/model_info", json={}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    info.raise_for_status()
    return info.json()


def served_versions(info: dict[str, Any]) -> dict[str, str]:
    """Return the versions a ``/model_info`` answer says are being served."""
    return {m["name"]: str(m["version"]) for m in info["models"].values()}


def swap_window(info: dict[str, Any], margin: float = 1.0) -> tuple[float, float] | None:
    """Return the monotonic-clock span of the last swap (its load and check), plus ``margin``."""
    reload = info.get("reload") or {}
    if not reload.get("last_swap") or reload.get("seconds") is None:
        return None
    end_wall = datetime.fromisoformat(reload["last_swap"]).timestamp()
    end = end_wall - (time.time() - time.monotonic())
    return end - float(reload["seconds"]), end + margin


def swap(
    folder: Path, env: dict[str, str], base: str, load: Load, move: list[str], phase: float
) -> dict[str, Any]:
    """Move the aliases (``promote``/``rollback``), ask for a reload, and measure the swap."""
    before = load.window(time.monotonic() - phase, time.monotonic())
    moved_at = time.monotonic()
    cli(folder, env, *move)
    reload = httpx.post(
        f"{base}/reload", headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    )  # fmt: skip
    first_new = None
    old = {s.versions for s in before if s.status == 200}
    deadline = moved_at + 120
    while time.monotonic() < deadline and first_new is None:
        time.sleep(0.2)
        fresh = [s for s in load.window(moved_at, time.monotonic()) if s.status == 200]
        new = [s for s in fresh if s.versions and s.versions not in old]
        if new:
            first_new = min(s.start for s in new)
    time.sleep(phase)
    after = load.window(moved_at, time.monotonic())
    failed = [s for s in after if s.status != 200]
    info = model_info(base)
    span = swap_window(info)
    during_swap = load.window(*span) if span else []
    return {
        "move": " ".join(move),
        "reload_status": reload.status_code,
        "seconds_to_served": None if first_new is None else round(first_new - moved_at, 2),
        "requests": len(after),
        "failed": len(failed),
        "failed_statuses": sorted({s.status for s in failed}),
        "p99_ms_before": p99(before),
        "p99_ms_during": p99(after),
        "swap_seconds": None if span is None else round(span[1] - span[0] - 1.0, 2),
        "requests_during_swap": len(during_swap),
        "p99_ms_during_swap": p99(during_swap),
        "served_after": served_versions(info),
    }


def kill_at_write(folder: Path, env: dict[str, str], command: list[str], target: Path, trials: int):
    """Run ``command`` onto an existing ``target``; SIGKILL it mid-write; is the target intact?"""
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    results = []
    for trial in range(trials):
        proc = subprocess.Popen(
            [str(BIN / "lifecycle"), *command], cwd=folder, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # half the trials kill when a temporary file appears beside the target, half at a
        # random moment of the command's life
        deadline = time.monotonic() + (RNG.uniform(0.5, 4.0) if trial % 2 else 60)
        killed_at = "random"
        while proc.poll() is None and time.monotonic() < deadline:
            if trial % 2 == 0 and any(
                p.name != target.name and p.name.startswith(("." + target.name, target.name))
                for p in target.parent.iterdir()
            ):
                killed_at = "temporary file"
                break
            time.sleep(0.005)
        finished = proc.poll() is not None
        with suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        intact = hashlib.sha256(target.read_bytes()).hexdigest() == digest
        leftovers = sorted(
            p.name for p in target.parent.iterdir() if p.name.startswith(("." + target.name,))
        )
        results.append(
            {
                "killed_at": "after it finished" if finished else killed_at,
                "intact": intact or finished,
                "leftover_temporary_files": leftovers,
            }
        )
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small world and short phases.")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--phase", type=float, default=None, help="Seconds of load per phase.")
    parser.add_argument("--soak", type=float, default=None, help="Seconds of the soak.")
    parser.add_argument("--share", type=float, default=0.6, help="Load as a share of capacity.")
    parser.add_argument("--kills", type=int, default=None, help="Kills per command.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    customers = args.customers or (2000 if args.quick else 5000)
    phase = args.phase or (20.0 if args.quick else 60.0)
    soak = args.soak or (60.0 if args.quick else 300.0)
    kills = args.kills or (3 if args.quick else 10)
    folder = (CACHE / f"reliability-world-{customers}c").resolve()
    world = build_world(folder, customers, seed=7, trials=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env["MLFLOW_TRACKING_URI"] = world["tracking_uri"]
    events = str(folder / "validated" / "events.parquet")
    log("a second training run: the challengers to swap to")
    second = cli(folder, env, "train", "--events", events, "--config", "training.yaml",
                 "--trials", "1", "--seed", "8", "--report-dir", "reports")  # fmt: skip
    ids = pd.read_parquet(folder / "scores.parquet", columns=["customer_id"])["customer_id"]
    pool = ids.sample(n=min(2000, len(ids)), random_state=1).astype(str).tolist()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    with service(folder, env, port, poll=5) as proc:
        capacity = throughput(f"{base}/predict", pool, seconds=10)
        rate = max(1.0, capacity * args.share)
        log(f"capacity {capacity:.0f} req/s closed-loop; load at {rate:.0f} req/s")
        with Load(f"{base}/predict", pool, rate) as load:
            time.sleep(phase)
            promote = swap(folder, env, base, load, ["promote", "--force"], phase)
            log(f"promote: {promote}")
            rollback = swap(folder, env, base, load, ["rollback"], phase)
            log(f"rollback: {rollback}")
            steady = load.window(0, load.samples[0].start + phase) if load.samples else []
        results["swaps"] = {
            "capacity_rps": round(capacity, 1),
            "rate_rps": round(rate, 1),
            "steady_p99_ms": p99(steady),
            "promote": promote,
            "rollback": rollback,
            "second_run": second.get("registered"),
        }
        log(f"soak: {soak:.0f} s at {rate:.0f} req/s")
        rss: list[tuple[float, float]] = []
        with Load(f"{base}/predict", pool, rate) as load:
            began = time.monotonic()
            while time.monotonic() - began < soak:
                rss.append((time.monotonic() - began, tree_rss_mib(proc.pid)))
                time.sleep(5)
            soaked = load.window(0, time.monotonic())
        first = [m for t, m in rss if t < 60] or [rss[0][1]]
        last = [m for t, m in rss if t >= rss[-1][0] - 60] or [rss[-1][1]]
        results["soak"] = {
            "seconds": soak,
            "requests": len(soaked),
            "failed": sum(s.status != 200 for s in soaked),
            "p99_ms": p99(soaked),
            "rss_mib_first_minute": round(float(np.median(first)), 1),
            "rss_mib_last_minute": round(float(np.median(last)), 1),
            "rss_growth_pct": round(100 * (np.median(last) / np.median(first) - 1), 2),
        }
    log("kills at the write")
    good = folder / "kill"
    good.mkdir(exist_ok=True)
    cli(folder, env, "features", "--events", events, "--cutoff", "2025-06-01",
        "--out", str(good / "features.parquet"))  # fmt: skip
    results["kills"] = {
        "validate": kill_at_write(
            folder, env, ["validate", "--events", "sim/events.parquet", "--out", "validated"],
            folder / "validated" / "events.parquet", kills,
        ),
        "features": kill_at_write(
            folder, env, ["features", "--events", events, "--cutoff", "2025-06-01",
                          "--out", str(good / "features.parquet")],
            good / "features.parquet", kills,
        ),
        "score": kill_at_write(
            folder, env, ["score", "--events", events, "--cutoff", "2026-01-01",
                          "--out", "scores.parquet"],
            folder / "scores.parquet", kills,
        ),
    }  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = {
        "benchmark": "reliability",
        "run": stamp,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "world": {"customers": customers, "reused": world.get("reused")},
        **results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"reliability-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
