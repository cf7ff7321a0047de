"""Serving latency and throughput: `lifecycle serve` beside a bare floor, under wrk, one run.

Usage: python benchmarks/serving_latency.py [--lookup demo/scores.parquet] [--duration 15]
       [--clients 1 16 64] [--tracking-uri URI]

Needs the demo's champions and lookup table (`make demo`). Starts both servers (one worker
each): the service (BentoML: validation, Tree SHAP, sentences, next-best-action, auth) and
the floor (`benchmarks/serving_floor.py`: Starlette on uvicorn doing only the model calls with
Tree SHAP). wrk (installed with apt when missing and running as root) sends one customer per
request with explanations, picked at random from 2,000 ids, at each client count, alternating
the two servers. Then batches of 100 and 1,000 customers are timed sequentially against
both, and against LightGBM's own ``pred_contrib`` on the same rows in this process.

Writes benchmarks/results/serving-<UTC time>.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.engine import Engine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
KEY = "bench-key"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk with apt-get")
        apt = shutil.which("apt-get") or "apt-get"
        subprocess.run([apt, "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(name: str, args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    log_file = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
    process = subprocess.Popen(
        args, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{name} did not start; see {log_file.name}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        log(f"{name} ready on {url} (pid {process.pid})")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wrk_script(ids: list[str], path: str, headers: dict[str, str]) -> Path:
    bodies = ",\n".join(json.dumps(json.dumps({"customer_id": cid})) for cid in ids)
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = f"""
wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "application/json"
{header_lines}
local bodies = {{
{bodies}
}}
local n = #bodies
request = function()
  return wrk.format(nil, nil, nil, bodies[math.random(n)])
end
"""
    handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    handle.write(script)
    handle.close()
    return Path(handle.name)


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"cannot read a wrk duration from {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def run_wrk(wrk: str, url: str, script: Path, clients: int, seconds: int) -> dict[str, float]:
    args = [wrk, "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    out = subprocess.run(
        [*args, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p50_ms": to_ms(percentiles["50"]),
        "p90_ms": to_ms(percentiles["90"]),
        "p99_ms": to_ms(percentiles["99"]),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


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
        explainer = shap.TreeExplainer(model.estimator.booster_)
        began = time.perf_counter()
        for i in range(100):
            model.estimator.contributions_matrix(xm[i : i + 1], 1)
        out["native_row_ms"] += (time.perf_counter() - began) * 10
        began = time.perf_counter()
        for i in range(100):
            explainer.shap_values(xm[i : i + 1])
        out["shap_row_ms"] += (time.perf_counter() - began) * 10
        block = np.concatenate([xm, xm])
        began = time.perf_counter()
        native = model.estimator.contributions_matrix(block, 1)
        out["native_1000_ms"] += (time.perf_counter() - began) * 1e3
        began = time.perf_counter()
        values = np.asarray(explainer.shap_values(block))
        out["shap_1000_ms"] += (time.perf_counter() - began) * 1e3
        diff = float(np.abs(native[:, :-1] - values).max())
        out["max_abs_difference"] = max(out["max_abs_difference"], diff)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookup", default=str(ROOT / "demo" / "scores.parquet"))
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5, help="batch calls per size")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[100, 1000])
    args = parser.parse_args()
    wrk = ensure_wrk()
    uri = args.tracking_uri or f"sqlite:///{ROOT / 'mlflow.db'}"
    engine = Engine.load(tracking_uri=uri, lookup=args.lookup, use_uplift=False)
    assert engine.lookup is not None
    ids = list(engine.lookup.index)
    random.Random(7).shuffle(ids)  # noqa: S311 - a reproducible sample, not a secret
    ids = ids[:2000]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env |= {"MLFLOW_TRACKING_URI": uri, "LIFECYCLE_API_KEY": KEY}
    service_port, floor_port = free_port(), free_port()
    service_args = [str(BIN / "lifecycle"), "serve", "--lookup", args.lookup]
    service_args += ["--port", str(service_port), "--tracking-uri", uri]
    floor_args = [sys.executable, str(ROOT / "benchmarks" / "serving_floor.py")]
    floor_args += ["--port", str(floor_port), "--lookup", args.lookup, "--tracking-uri", uri]
    headers = {"Authorization": f"Bearer {KEY}"}
    results: dict = {"load": {}, "batches": {}}
    with (
        server("service", service_args, env, service_port) as service_url,
        server("floor", floor_args, env, floor_port) as floor_url,
    ):
        targets = {
            "service": (service_url, wrk_script(ids, "/predict", headers), headers),
            "floor": (floor_url, wrk_script(ids, "/predict", {}), {}),
        }
        for url, script, _ in targets.values():
            run_wrk(wrk, url, script, 4, 3)  # warm both up
        for clients in args.clients:
            for name, (url, script, _) in targets.items():
                log(f"wrk {name}, {clients} client(s), {args.duration} s")
                stats = run_wrk(wrk, url, script, clients, args.duration)
                results["load"].setdefault(str(clients), {})[name] = stats
        for size in args.batch_sizes:
            entry = {}
            for name, (url, _, hdrs) in targets.items():
                log(f"batches of {size}: {name}")
                entry[f"{name}_seconds"] = time_batches(url, ids, size, args.repeats, hdrs)
            entry["pred_contrib_seconds"] = pred_contrib_seconds(engine, ids, size, args.repeats)
            entry["service_per_customer_ms"] = entry["service_seconds"] / size * 1e3
            entry["service_vs_pred_contrib"] = (
                entry["service_seconds"] / entry["pred_contrib_seconds"]
            )
            entry["service_vs_floor"] = entry["service_seconds"] / entry["floor_seconds"]
            results["batches"][str(size)] = entry
    log("native Tree SHAP vs shap.TreeExplainer")
    results["explainers"] = shap_comparison(engine, ids)
    for stats in results["load"].values():
        stats["throughput_ratio"] = stats["service"]["rps"] / stats["floor"]["rps"]
        stats["service_p99_over_p50"] = stats["service"]["p99_ms"] / stats["service"]["p50_ms"]
        stats["floor_p99_over_p50"] = stats["floor"]["p99_ms"] / stats["floor"]["p50_ms"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    import bentoml
    import lightgbm

    record = {
        "created": stamp,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "versions": {"bentoml": bentoml.__version__, "lightgbm": lightgbm.__version__},
        "models": engine.versions,
        "lookup_customers": len(engine.lookup.index),
        "duration_seconds": args.duration,
        "request": "one customer by id, explain=true (top 5 drivers per prediction), lang=en",
        **results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"serving-{stamp}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(
        "| clients | service rps | floor rps | ratio | service p50 / p99 ms "
        "| floor p50 / p99 ms | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for clients, stats in results["load"].items():
        s, f = stats["service"], stats["floor"]
        print(
            f"| {clients} | {s['rps']:.0f} | {f['rps']:.0f} | {stats['throughput_ratio']:.2f} "
            f"| {s['p50_ms']:.2f} / {s['p99_ms']:.2f} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} "
            f"| {s['non_2xx']} {s['socket_errors']} |"
        )
    print("\n| batch | service s | floor s | pred_contrib s | service / pred_contrib |")
    print("|---|---|---|---|---|")
    for size, entry in results["batches"].items():
        print(
            f"| {size} | {entry['service_seconds']:.3f} | {entry['floor_seconds']:.3f} "
            f"| {entry['pred_contrib_seconds']:.3f} | {entry['service_vs_pred_contrib']:.2f} |"
        )
    e = results["explainers"]
    print(
        f"\nTree SHAP, three models: native {e['native_row_ms']:.2f} ms/row single, "
        f"{e['native_1000_ms']:.0f} ms per 1,000 rows; shap TreeExplainer "
        f"{e['shap_row_ms']:.2f} ms/row, {e['shap_1000_ms']:.0f} ms per 1,000; "
        f"max difference {e['max_abs_difference']:.1e}"
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
