"""Serving latency and throughput: `lifecycle serve` beside a bare floor, under wrk, one run.

Usage: python benchmarks/serving_latency.py [--quick] [--world DIR] [--lookup FILE]
       [--tracking-uri URI] [--duration 15] [--clients 1 16 64] [--batch-sizes 100 1000]
       [--batch-clients 1 4] [--batch-duration 15] [--batch-min-requests 30] [--repeats 5]
       [--out DIR]

The world (champion models in an MLflow store and the lookup table they serve):

- ``--lookup`` (and ``--tracking-uri``) given: that lookup table and store;
- else, without ``--quick``, the demo's when ``make demo`` has made them (demo/scores.parquet
  and mlflow.db in the repository root);
- else (``--quick``, or no demo) a small world built here with the project's CLI, as
  subprocesses: ``lifecycle simulate``, ``validate``, ``train --trials 1``, ``promote`` and
  ``score``, with MLflow in a SQLite file inside the world's folder. The folder is ``--world``
  or benchmarks/.cache/serving-world-<customers>c-s<seed>; a complete world there is reused
  when it was built from the same code and settings (``--rebuild-world`` forces a new one).

Then it starts both servers (one worker each, in parallel): the service (``lifecycle serve``,
BentoML: validation, Tree SHAP, sentences, next-best-action, auth) and the floor
(``benchmarks/serving_floor.py``: Starlette on uvicorn doing only the model calls with Tree
SHAP). wrk (installed with apt when missing and running as root), alternating the two servers:

1. one customer per request with explanations, picked at random from 2,000 ids, at each of
   ``--clients``;
2. ``/predict_batch`` with batches of ``--batch-sizes`` distinct customers (random per request,
   from the same 2,000) with explanations, at each of ``--batch-clients``; each run lasts long
   enough for about ``--batch-min-requests`` requests (estimated from the sequential timing)
   and at least ``--batch-duration`` seconds, with a wrk timeout well above the expected
   latency.

Each batch size is also timed sequentially (median of ``--repeats``) against both servers and
against LightGBM's own ``pred_contrib`` on the same rows in this process (the aim: a batch of
1,000 within 1.5x ``pred_contrib``), and native Tree SHAP is compared with shap's
``TreeExplainer``.

``--quick``: a 3,000-customer world, 5 s wrk runs, fewer repeats (a few minutes, building
the world included). Writes <out>/serving-<UTC time>.json (default benchmarks/results) and
prints the tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lifecycle.serving.engine import Engine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
BIN = Path(sys.executable).parent
KEY = "bench-key"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
POOL = 2000
MARKER = ".serving-benchmark-world"
WORLD_CUTOFF = "2026-01-01"  # the day after the simulator's default 4 years, as in `make demo`
# Report-only settings for the built world's training: the models are trained as by default
# (same cutoffs, same protocol), only the report's extras are skipped to save time.
WORLD_TRAINING_YAML = "report_customer_split: false\nbaselines: [rfm]\nshap_sample: 200\n"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt:
        log("installing wrk with apt-get")
        install = [apt, "install", "-y", "-q", "wrk"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run([apt, "update", "-q"], capture_output=True)
            subprocess.run(install, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    return found


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the world -------------------------------------------------------------------------------


def code_fingerprint(customers: int, seed: int, trials: int) -> str:
    """Hash of what shapes a built world: its settings, the packages' code, the lock file."""
    digest = hashlib.sha256(f"{customers}/{seed}/{trials}/{WORLD_TRAINING_YAML}".encode())
    files = [ROOT / "uv.lock"]
    for package in ("features", "models", "training"):
        files += sorted((ROOT / package).rglob("*.py")) + sorted((ROOT / package).rglob("*.yaml"))
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def clear_world(folder: Path) -> None:
    """Remove a world folder this script made (never a folder it did not make)."""
    if not folder.exists():
        return
    ours = (folder / MARKER).exists() or (folder / "world.json").exists()
    if not ours and any(folder.iterdir()):
        sys.exit(f"{folder} is not empty and was not made by this script: choose another --world")
    shutil.rmtree(folder)


def build_world(folder: Path, customers: int, seed: int, trials: int) -> dict[str, Any]:
    """Simulate, validate, train, promote and score with the CLI; return the manifest.

    MLflow lives in ``folder`` (a SQLite store, artifacts under it: the commands run there),
    and so does everything else. A manifest (world.json) written last marks it complete.
    """
    folder = folder.resolve()  # the commands run inside it: relative paths would break
    fingerprint = code_fingerprint(customers, seed, trials)
    manifest_path = folder / "world.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("fingerprint") == fingerprint:
            log(f"reusing the world in {folder} (built {manifest['built']})")
            return manifest | {"reused": True}
        log(f"the world in {folder} was built from other code or settings: rebuilding")
    clear_world(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by benchmarks/serving_latency.py\n", encoding="utf-8")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env["MLFLOW_TRACKING_URI"] = uri
    (folder / "training.yaml").write_text(WORLD_TRAINING_YAML, encoding="utf-8")
    cli = str(BIN / "lifecycle")
    events = str(folder / "validated" / "events.parquet")
    steps: list[tuple[str, list[str]]] = [
        ("simulate", ["--customers", str(customers), "--seed", str(seed), "--out", "sim"]),
        ("validate", ["--events", "sim/events.parquet", "--out", "validated"]),
        ("train", ["--events", events, "--trials", str(trials), "--seed", str(seed)]),
        ("promote", ["--tracking-uri", uri]),
        ("score", ["--events", events, "--cutoff", WORLD_CUTOFF, "--out", "scores.parquet"]),
    ]
    steps[2][1].extend(["--config", "training.yaml", "--report-dir", "reports"])
    steps[2][1].extend(["--tracking-uri", uri])
    steps[4][1].extend(["--tracking-uri", uri])
    seconds: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    began_all = time.perf_counter()
    for name, options in steps:
        log(f"world: lifecycle {name}")
        began = time.perf_counter()
        done = subprocess.run(
            [cli, name, *options, "--json"], cwd=folder, env=env, capture_output=True, text=True
        )
        seconds[name] = round(time.perf_counter() - began, 1)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-3000:]
            sys.exit(f"building the world failed at `lifecycle {name}`:\n{tail}")
        lines = done.stdout.strip().splitlines()
        try:
            outputs[name] = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            outputs[name] = {}
    manifest = {
        "built": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "fingerprint": fingerprint,
        "customers": customers,
        "seed": seed,
        "trials": trials,
        "cutoff": WORLD_CUTOFF,
        "events": outputs.get("simulate", {}).get("events"),
        "tracking_uri": uri,
        "lookup": str(folder / "scores.parquet"),
        "models": outputs.get("score", {}).get("model_versions"),
        "build_seconds": round(time.perf_counter() - began_all, 1),
        "step_seconds": seconds,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"world built in {manifest['build_seconds']} s: {seconds}")
    return manifest | {"reused": False}


def choose_world(args: argparse.Namespace) -> dict[str, Any]:
    """Return the world to serve: kind, lookup, tracking URI and what is known about it."""
    demo_lookup, demo_db = ROOT / "demo" / "scores.parquet", ROOT / "mlflow.db"
    if args.lookup and args.world is None:
        uri = args.tracking_uri or f"sqlite:///{demo_db}"
        return {"kind": "given", "lookup": args.lookup, "tracking_uri": uri}
    if args.world is None and not args.quick and demo_lookup.exists() and demo_db.exists():
        uri = args.tracking_uri or f"sqlite:///{demo_db}"
        return {"kind": "demo", "lookup": str(demo_lookup), "tracking_uri": uri}
    if args.world is None and not args.quick:
        log("no demo (demo/scores.parquet and mlflow.db; `make demo`): building a world")
    folder = args.world or CACHE / f"serving-world-{args.world_customers}c-s{args.world_seed}"
    manifest = build_world(Path(folder), args.world_customers, args.world_seed, args.world_trials)
    return {"kind": "built", "path": str(folder), **manifest}


# --- servers and load ------------------------------------------------------------------------


@contextmanager
def servers(
    specs: dict[str, tuple[int, list[str]]], env: dict[str, str], work: Path
) -> Iterator[tuple[Callable[[], dict[str, str]], dict[str, int]]]:
    """Start every server at once; yield a function that waits until each answers /readyz
    (and returns their URLs), so other work can overlap their start-up, and their process ids
    (each leads its own session); stop them all after."""
    started: dict[str, tuple[subprocess.Popen, str, Path]] = {}

    def ready() -> dict[str, str]:
        deadline = time.monotonic() + 240
        for name, (process, url, log_path) in started.items():
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    sys.exit(f"{name} did not start:\n{tail}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            log(f"{name} ready on {url} (pid {process.pid})")
        return {name: url for name, (_, url, _) in started.items()}

    try:
        for name, (port, args) in specs.items():
            log_path = work / f"{name}.log"
            with log_path.open("wb") as log_file:
                process = subprocess.Popen(
                    args, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
                )
            started[name] = (process, f"http://127.0.0.1:{port}", log_path)
        yield ready, {name: process.pid for name, (process, _, _) in started.items()}
    finally:
        table = process_table() or {}
        ours = {  # (pid, start time): a pid reused meanwhile is not ours
            (pid, table[pid][2])
            for process, _, _ in started.values()
            for pid in process_tree(process.pid, table)
        }
        for process, _, _ in started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        for process, _, _ in started.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Whatever the servers started and left behind (their own sessions), by process id.
        time.sleep(1)
        now = process_table() or {}
        for pid in sorted(pid for pid, start in ours if pid in now and now[pid][2] == start):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def process_table() -> dict[int, tuple[int, int, int]] | None:
    """Every live process: pid -> (parent pid, CPU clock ticks used, start time), from /proc
    (Linux)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    table = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))
    return table


def process_tree(root: int, table: dict[int, tuple[int, int, int]]) -> set[int]:
    """``root`` and its descendants (BentoML's workers start sessions of their own)."""
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, (parent, _, _) in table.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return tree & set(table)


def tree_cpu_seconds(root: int) -> float | None:
    """CPU seconds used so far by the live processes of ``root``'s tree, or None."""
    table = process_table()
    if table is None:
        return None
    return sum(table[pid][1] for pid in process_tree(root, table)) / os.sysconf("SC_CLK_TCK")


def wait_idle(root: int, at_most: float, busy: float = 0.15, window: float = 0.25) -> None:
    """Wait until a server (its process tree) uses under ``busy`` of a core, ``at_most``
    seconds at most (then it simply goes on; without /proc it waits ``at_most``)."""
    deadline = time.monotonic() + at_most
    before = tree_cpu_seconds(root)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = tree_cpu_seconds(root)
        if before is not None and now is not None and now - before < busy * window:
            return
        before = now
    if before is not None:
        log(f"the server was still busy after {at_most:.1f} s; going on")


def lua_strings(values: list[str]) -> str:
    """Lua string literals (JSON's escapes are valid Lua for these ASCII ids)."""
    return ",\n".join(json.dumps(v) for v in values)


def _wrk_prologue(path: str, headers: dict[str, str], name: str, ids: list[str]) -> str:
    """Seed, method, path and headers, and the ids' JSON bodies as the Lua table ``name``."""
    bodies = lua_strings([json.dumps({"customer_id": cid}) for cid in ids])
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    return f"""
math.randomseed(7)
wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "application/json"
{header_lines}
local {name} = {{
{bodies}
}}
"""


def _write_script(work: Path, stem: str, script: str) -> Path:
    out = work / f"{stem}-{len(list(work.glob('*.lua')))}.lua"
    out.write_text(script, encoding="utf-8")
    return out


def wrk_script(work: Path, ids: list[str], path: str, headers: dict[str, str]) -> Path:
    """One customer per request, picked at random from ``ids``."""
    script = (
        _wrk_prologue(path, headers, "bodies", ids)
        + """local n = #bodies
request = function()
  return wrk.format(nil, nil, nil, bodies[math.random(n)])
end
"""
    )
    return _write_script(work, "single", script)


def wrk_batch_script(work: Path, ids: list[str], size: int, headers: dict[str, str]) -> Path:
    """``size`` distinct customers per request, drawn at random from ``ids`` each time.

    A partial Fisher-Yates shuffle of the pool per request: its first ``size`` entries are a
    uniform random sample without replacement.
    """
    script = (
        _wrk_prologue("/predict_batch", headers, "pool", ids)
        + f"""local n = #pool
local size = {size}
local chosen = {{}}
request = function()
  for i = 1, size do
    local j = math.random(i, n)
    pool[i], pool[j] = pool[j], pool[i]
    chosen[i] = pool[i]
  end
  return wrk.format(nil, nil, nil, '{{"items":[' .. table.concat(chosen, ",") .. ']}}')
end
"""
    )
    return _write_script(work, f"batch-{size}", script)


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"cannot read a wrk duration from {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def run_wrk(
    wrk: str, url: str, script: Path, clients: int, seconds: int, timeout: int = 10
) -> dict[str, Any]:
    args = [wrk, "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", f"{timeout}s"]
    out = subprocess.run(
        [*args, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.MULTILINE))
    done = re.search(r"(\d+) requests in (\S+),", out)
    if done is None:
        raise ValueError(f"cannot read wrk's output:\n{out}")
    requests, elapsed_s = int(done.group(1)), to_ms(done.group(2)) / 1e3
    rps = requests / elapsed_s  # wrk prints Requests/sec with two decimals only
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    counts = (
        {
            kind: int(n)
            for kind, n in re.findall(r"(connect|read|write|timeout) (\d+)", socket_errors.group(1))
        }
        if socket_errors
        else {}
    )
    stats: dict[str, Any] = {
        "requests": requests,
        "duration_s": seconds,
        "elapsed_s": elapsed_s,
        "timeout_s": timeout,
        "rps": rps,
        "p50_ms": to_ms(percentiles["50"]) if "50" in percentiles else math.nan,
        "p90_ms": to_ms(percentiles["90"]) if "90" in percentiles else math.nan,
        "p99_ms": to_ms(percentiles["99"]) if "99" in percentiles else math.nan,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "socket_error_counts": counts,
    }
    stats["errors"] = stats["non_2xx"] + sum(counts.values())
    return stats


def time_batches(url: str, ids: list[str], size: int, repeats: int, headers: dict) -> float:
    """Median wall seconds of one /predict_batch call of ``size`` customers."""
    times = []
    with httpx.Client(base_url=url, timeout=120, headers=headers) as http:
        for r in range(repeats + 1):
            chosen = ids[(r * size) % len(ids) :][:size]
            chosen += ids[: size - len(chosen)]
            began = time.perf_counter()
            answer = http.post(
                "/predict_batch", json={"items": [{"customer_id": c} for c in chosen]}
            )
            elapsed = time.perf_counter() - began
            if answer.status_code != 200:
                sys.exit(f"batch of {size} failed: {answer.status_code} {answer.text[:300]}")
            if r:  # the first call warms up
                times.append(elapsed)
    return float(np.median(times))


def batch_run_plan(
    seconds_per_batch: float, clients: int, floor_s: int, min_requests: int
) -> tuple[int, int]:
    """wrk duration and timeout (seconds) for batch requests taking ``seconds_per_batch``.

    One worker answers about one batch per ``seconds_per_batch`` whatever the clients, so
    ``min_requests`` need about that many times as long, plus the ``clients`` requests still
    in flight when wrk stops (not counted); a request waits for the others in flight, so the
    timeout allows several times ``clients`` batches.
    """
    needed = (min_requests + clients) * seconds_per_batch * 1.15
    duration = max(floor_s, math.ceil(needed) + 1)
    timeout = max(10, math.ceil(3 * clients * seconds_per_batch) + 5)
    return duration, timeout


def pred_contrib_seconds(engine: Engine, ids: list[str], size: int, repeats: int) -> float:
    """Median seconds of LightGBM's own pred_contrib (3 models, 1 thread) on ``size`` rows."""
    lookup = engine.lookup
    assert lookup is not None
    rows = np.array([lookup.index[c] for c in (ids * 2)[:size]])
    x = lookup.x[rows]
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        for model in engine.models.values():
            xm = x if model.columns is None else x[:, model.columns]
            model.estimator.contributions_matrix(xm, 1)
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def shap_comparison(engine: Engine, ids: list[str]) -> dict[str, float]:
    """Per-row seconds of native pred_contrib vs shap's TreeExplainer, and their agreement."""
    import shap

    lookup = engine.lookup
    assert lookup is not None
    x = lookup.x[np.array([lookup.index[c] for c in ids[:500]])]
    out: dict[str, float] = {"native_row_ms": 0.0, "shap_row_ms": 0.0, "native_1000_ms": 0.0}
    out |= {"shap_1000_ms": 0.0, "max_abs_difference": 0.0}
    for model in engine.models.values():
        xm = x if model.columns is None else x[:, model.columns]
        # the booster's own input: a hybrid's booster also reads the BTYD columns (the
        # estimator then folds their values onto the features)
        design = model.estimator.design_matrix(xm)
        booster = model.estimator.booster_
        explainer = shap.TreeExplainer(booster)

        def native_contrib(rows: np.ndarray, booster: Any = booster) -> np.ndarray:
            return np.asarray(
                booster.predict(
                    rows,
                    pred_contrib=True,
                    num_iteration=booster.best_iteration or None,
                    num_threads=1,
                )
            )

        began = time.perf_counter()
        for i in range(100):
            native_contrib(design[i : i + 1])
        out["native_row_ms"] += (time.perf_counter() - began) * 10
        began = time.perf_counter()
        for i in range(100):
            explainer.shap_values(design[i : i + 1])
        out["shap_row_ms"] += (time.perf_counter() - began) * 10
        block = np.concatenate([design, design])
        began = time.perf_counter()
        native = native_contrib(block)
        out["native_1000_ms"] += (time.perf_counter() - began) * 1e3
        began = time.perf_counter()
        values = np.asarray(explainer.shap_values(block))
        out["shap_1000_ms"] += (time.perf_counter() - began) * 1e3
        diff = float(np.abs(native[:, :-1] - values).max())
        out["max_abs_difference"] = max(out["max_abs_difference"], diff)
    return out


def tree_counts(engine: Engine) -> dict[str, int]:
    """Trees used per model (the main booster; CLV's quantile boosters are not counted)."""
    counts: dict[str, int] = {}
    for task, model in engine.models.items():
        booster = getattr(model.estimator, "booster_", None)
        if booster is not None:
            counts[task] = int(booster.best_iteration or booster.num_trees())
    return counts


# --- the run ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small world, short runs")
    parser.add_argument("--lookup", default=None, help="lookup table (default: the demo's)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--world", type=Path, default=None, help="folder of a built world")
    parser.add_argument("--world-customers", type=int, default=None)
    parser.add_argument("--world-seed", type=int, default=42)
    parser.add_argument("--world-trials", type=int, default=1)
    parser.add_argument("--rebuild-world", action="store_true")
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=None, help="sequential batch calls")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[100, 1000])
    parser.add_argument(
        "--batch-clients", type=int, nargs="*", default=None, help="default 1 4 (1 with --quick)"
    )
    parser.add_argument(
        "--batch-duration", type=int, default=None, help="least seconds per batch wrk run"
    )
    parser.add_argument(
        "--batch-min-requests",
        type=int,
        default=None,
        help="batch wrk runs last long enough for about this many requests",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args()
    quick = args.quick
    defaults = {
        "world_customers": 3000 if quick else 20000,
        "duration": 5 if quick else 15,
        "repeats": 2 if quick else 5,
        "batch_duration": 5 if quick else 15,
        "batch_min_requests": 3 if quick else 30,
        "batch_clients": [1] if quick else [1, 4],
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    began_run = time.perf_counter()
    load_before = os.getloadavg()
    args = parse_args()
    wrk = ensure_wrk()
    if args.rebuild_world:
        clear_world(
            args.world or CACHE / f"serving-world-{args.world_customers}c-s{args.world_seed}"
        )
    world = choose_world(args)
    uri, lookup = world["tracking_uri"], world["lookup"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env |= {"MLFLOW_TRACKING_URI": uri, "LIFECYCLE_API_KEY": KEY}
    service_port, floor_port = free_port(), free_port()
    service_args = [str(BIN / "lifecycle"), "serve", "--lookup", lookup]
    service_args += ["--port", str(service_port), "--tracking-uri", uri]
    floor_args = [sys.executable, str(ROOT / "benchmarks" / "serving_floor.py")]
    floor_args += ["--port", str(floor_port), "--lookup", lookup, "--tracking-uri", uri]
    auth = {"Authorization": f"Bearer {KEY}"}
    headers = {"service": auth, "floor": {}}
    results: dict[str, Any] = {"load": {}, "batches": {}, "batch_load": {}}
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    try:
        specs = {"service": (service_port, service_args), "floor": (floor_port, floor_args)}
        with servers(specs, env, work) as (ready, pids):
            log("loading the models here too (for pred_contrib) while the servers start")
            engine = Engine.load(tracking_uri=uri, lookup=lookup, use_uplift=False)
            assert engine.lookup is not None
            ids = list(engine.lookup.index)
            random.Random(7).shuffle(ids)  # noqa: S311 - a reproducible sample, not a secret
            ids = ids[:POOL]
            sizes = [s for s in args.batch_sizes if s <= len(ids)]
            if sizes != args.batch_sizes:
                log(f"batches larger than the {len(ids)} customers in the pool are left out")
            urls = ready()
            with httpx.Client(headers=auth, timeout=30) as http:
                info = http.post(f"{urls['service']}/model_info", json={}).json()
            served = {
                "models": {t: m["version"] for t, m in info["models"].items()},
                "uplift": info.get("uplift"),
            }
            single = {n: wrk_script(work, ids, "/predict", headers[n]) for n in urls}
            for name, url in urls.items():
                run_wrk(wrk, url, single[name], 4, 3)  # warm both up
                wait_idle(pids[name], 2.0)
            for clients in args.clients:
                for name, url in urls.items():
                    log(f"wrk {name}, {clients} client(s), {args.duration} s")
                    stats = run_wrk(wrk, url, single[name], clients, args.duration)
                    results["load"].setdefault(str(clients), {})[name] = stats
                    wait_idle(pids[name], 2.0)  # the requests wrk left in flight
            for size in sizes:
                entry = {}
                for name, url in urls.items():
                    log(f"batches of {size}, sequential: {name}")
                    seconds = time_batches(url, ids, size, args.repeats, headers[name])
                    entry[f"{name}_seconds"] = seconds
                entry["pred_contrib_seconds"] = pred_contrib_seconds(
                    engine, ids, size, args.repeats
                )
                entry["service_per_customer_ms"] = entry["service_seconds"] / size * 1e3
                entry["service_vs_pred_contrib"] = (
                    entry["service_seconds"] / entry["pred_contrib_seconds"]
                )
                entry["service_vs_floor"] = entry["service_seconds"] / entry["floor_seconds"]
                results["batches"][str(size)] = entry
                scripts = {n: wrk_batch_script(work, ids, size, headers[n]) for n in urls}
                for clients in args.batch_clients:
                    for name, url in urls.items():
                        duration, timeout = batch_run_plan(
                            entry[f"{name}_seconds"],
                            clients,
                            args.batch_duration,
                            args.batch_min_requests,
                        )
                        log(
                            f"wrk {name}, batches of {size}, {clients} client(s), "
                            f"{duration} s (timeout {timeout} s)"
                        )
                        stats = run_wrk(wrk, url, scripts[name], clients, duration, timeout)
                        answered = stats["requests"] - stats["non_2xx"]
                        share = answered / stats["requests"] if stats["requests"] else 0.0
                        stats["customers_per_s"] = stats["rps"] * share * size
                        # wrk stops with ``clients`` batches still being answered: let the
                        # server finish them before the next run starts.
                        wait_idle(pids[name], clients * entry[f"{name}_seconds"] * 1.2 + 1)
                        results["batch_load"].setdefault(str(size), {}).setdefault(
                            str(clients), {}
                        )[name] = stats
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("native Tree SHAP vs shap.TreeExplainer")
    results["explainers"] = shap_comparison(engine, ids)
    for stats in results["load"].values():
        stats["throughput_ratio"] = stats["service"]["rps"] / stats["floor"]["rps"]
        stats["service_p99_over_p50"] = stats["service"]["p99_ms"] / stats["service"]["p50_ms"]
        stats["floor_p99_over_p50"] = stats["floor"]["p99_ms"] / stats["floor"]["p50_ms"]
    for by_clients in results["batch_load"].values():
        for stats in by_clients.values():
            s, f = stats["service"], stats["floor"]
            answered = f["customers_per_s"]
            stats["throughput_ratio"] = s["customers_per_s"] / answered if answered else math.nan
            stats["p50_ratio"] = s["p50_ms"] / f["p50_ms"]
            stats["p99_ratio"] = s["p99_ms"] / f["p99_ms"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    import bentoml
    import lightgbm

    world_record = {
        k: world.get(k)
        for k in ("kind", "path", "customers", "seed", "trials", "cutoff", "events", "reused")
        if world.get(k) is not None
    }
    world_record |= {
        "lookup": lookup,
        "tracking_uri": uri,
        "lookup_customers": len(engine.lookup.index),
        "models": engine.versions,
        "trees": tree_counts(engine),
        "service": served,
    }
    if "build_seconds" in world:
        world_record |= {"build_seconds": world["build_seconds"], "steps": world["step_seconds"]}
    record = {
        "created": stamp,
        "mode": "quick" if args.quick else "full",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1_5_15_before": [round(v, 2) for v in load_before],
            "load_average_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
        },
        "versions": {
            "bentoml": bentoml.__version__,
            "lightgbm": lightgbm.__version__,
            "wrk": wrk_version(wrk),
        },
        "world": world_record,
        "models": engine.versions,
        "lookup_customers": len(engine.lookup.index),
        "pool_customers": len(ids),
        "duration_seconds": args.duration,
        "batch_clients": args.batch_clients,
        "batch_min_requests": args.batch_min_requests,
        "repeats": args.repeats,
        "request": "one customer by id, explain=true (top 5 drivers per prediction), lang=en",
        "batch_request": "distinct random customers by id per request, explain=true, lang=en",
        **results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"serving-{stamp}.json"
    record["wall_seconds"] = round(time.perf_counter() - began_run, 1)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print_tables(record)
    print(f"\nwrote {path} ({record['wall_seconds']} s in all)")


def print_tables(record: dict[str, Any]) -> None:
    world = record["world"]
    trees = ", ".join(f"{t} {n}" for t, n in world["trees"].items())
    uplift = world["service"].get("uplift")
    print(
        f"World: {world['kind']}"
        + (f" ({world['path']})" if "path" in world else "")
        + f", {world['lookup_customers']:,} customers in the lookup table, models "
        + ", ".join(f"{n} v{v}" for n, v in world["models"].items())
        + f" (trees: {trees}); uplift model in the service: "
        + (f"{uplift['name']} v{uplift['version']}" if uplift else "none")
        + (f"; built in {world['build_seconds']} s" if "build_seconds" in world else "")
    )
    machine = record["machine"]
    print(
        f"Machine: {machine['cores']} cores, load average (1/5/15 min) "
        f"{machine['load_average_1_5_15_before']} before, "
        f"{machine['load_average_1_5_15_after']} after; mode {record['mode']}\n"
    )
    print(
        "| clients | service req/s | floor req/s | service / floor | service p50 / p99 ms "
        "| floor p50 / p99 ms | requests (service / floor) | errors (service / floor) |"
    )
    print("|---:|---:|---:|---:|---|---|---:|---:|")
    for clients, stats in record["load"].items():
        s, f = stats["service"], stats["floor"]
        print(
            f"| {clients} | {s['rps']:.0f} | {f['rps']:.0f} | {stats['throughput_ratio']:.2f} "
            f"| {s['p50_ms']:.2f} / {s['p99_ms']:.2f} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} "
            f"| {s['requests']:,} / {f['requests']:,} | {s['errors']} / {f['errors']} |"
        )
    if record["batch_load"]:
        print(
            "\n| customers | clients | service req/s | floor req/s | service customers/s "
            "| floor customers/s | service / floor | service p50 / p99 s | floor p50 / p99 s "
            "| requests (service / floor) | errors (service / floor) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
        for size, by_clients in record["batch_load"].items():
            for clients, stats in by_clients.items():
                s, f = stats["service"], stats["floor"]
                print(
                    f"| {int(size):,} | {clients} | {s['rps']:.2f} | {f['rps']:.2f} "
                    f"| {s['customers_per_s']:.0f} | {f['customers_per_s']:.0f} "
                    f"| {stats['throughput_ratio']:.2f} "
                    f"| {s['p50_ms'] / 1e3:.3f} / {s['p99_ms'] / 1e3:.3f} "
                    f"| {f['p50_ms'] / 1e3:.3f} / {f['p99_ms'] / 1e3:.3f} "
                    f"| {s['requests']} / {f['requests']} | {s['errors']} / {f['errors']} |"
                )
    print(
        "\n| customers | service s | floor s | pred_contrib s | service / pred_contrib "
        "| service / floor |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, entry in record["batches"].items():
        print(
            f"| {int(size):,} | {entry['service_seconds']:.3f} | {entry['floor_seconds']:.3f} "
            f"| {entry['pred_contrib_seconds']:.3f} | {entry['service_vs_pred_contrib']:.2f} "
            f"| {entry['service_vs_floor']:.2f} |"
        )
    e = record["explainers"]
    print(
        f"\nTree SHAP, three models: native {e['native_row_ms']:.2f} ms/row single, "
        f"{e['native_1000_ms']:.0f} ms per 1,000 rows; shap TreeExplainer "
        f"{e['shap_row_ms']:.2f} ms/row, {e['shap_1000_ms']:.0f} ms per 1,000; "
        f"max difference {e['max_abs_difference']:.1e}"
    )


if __name__ == "__main__":
    main()
