"""Bounded work (issue 17 §3): requests admitted by cost, work stopped by its deadline or a
client gone, a body that never arrives answered 408, and one log line per 5xx or timeout.

In-process through the ASGI app (the `client` fixture), and once as a real server where
timing and CPU time matter.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from starlette.testclient import TestClient

from lifecycle.serving.guard import RUNTIME, request_cost
from lifecycle.serving.schemas import BatchRequest

from ..servers import BIN, free_port, running
from .conftest import World


def costly_batch(cutoffs: int = 100, items: int = 100) -> dict[str, Any]:
    """The request of the issue: 100 items of raw events with 100 different as_of values
    (about 20 KB)."""
    return {
        "items": [
            {
                "events": [{"event_ts": "2025-01-02T10:00:00Z", "event_type": "visit"}],
                "as_of": f"2025-03-{1 + (i % cutoffs) // 24:02d}T{(i % cutoffs) % 24:02d}:00:00Z",
            }
            for i in range(items)
        ]
    }


@pytest.fixture
def limits(client: TestClient) -> Iterator[TestClient]:
    """The client, with the settings restored after the test changed them."""
    saved = RUNTIME.settings
    yield client
    RUNTIME.settings = saved
    RUNTIME.in_flight = 0


def test_cost_counts_feature_builds_per_distinct_cutoff() -> None:
    hundred = BatchRequest.model_validate(costly_batch())
    one_cutoff = BatchRequest.model_validate(costly_batch(cutoffs=1))
    assert len(json.dumps(costly_batch())) < 20_000
    # 100 builds vs 1: the item count is the same, the work is not
    assert request_cost(hundred) == 100 + 500 + 1000 + 100 * 100 + 1  # 100 events: 1
    assert request_cost(one_cutoff) == 100 + 500 + 1000 + 100 + 1
    lookups = BatchRequest.model_validate({"items": [{"customer_id": "c"}] * 1000})
    assert request_cost(lookups) == 6000  # the default budget admits a full batch of lookups


def test_the_100_by_100_request_is_refused_with_422_naming_the_limit(
    limits: TestClient,
) -> None:
    started = time.perf_counter()
    response = limits.post("/predict_batch", json=costly_batch())
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "too_costly"
    assert "LIFECYCLE_MAX_COST" in body["message"] and "6,000" in body["message"]
    assert body["fields"][0]["field"] == "items"
    # the same items at one cutoff are admitted and answered
    ok = limits.post("/predict_batch", json=costly_batch(cutoffs=1))
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["items"]) == 100


def test_work_stops_at_its_deadline_with_504_and_one_log_line(
    limits: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    RUNTIME.settings = RUNTIME.settings.model_copy(update={"max_cost": 10**9, "work_timeout": 0.5})
    caplog.set_level(logging.INFO, logger="lifecycle.serving")
    started = time.perf_counter()
    response = limits.post("/predict_batch", json=costly_batch())
    elapsed = time.perf_counter() - started
    print(f"100 x 100 with a 0.5 s work timeout: {response.status_code} after {elapsed:.2f} s")
    assert response.status_code == 504, response.text
    assert response.json()["error"] == "timeout"
    assert elapsed < 0.5 + 1.5  # stopped within one unit of work after its deadline
    lines = [r.getMessage() for r in caplog.records if "504" in r.getMessage()]
    assert len(lines) == 1 and "POST /predict_batch" in lines[0], lines
    assert RUNTIME.in_flight == 0
    # the worker is free at once: a lookup answers quickly
    customer = next(iter(RUNTIME.engine.lookup.index))
    quick = time.perf_counter()
    assert limits.post("/predict", json={"customer_id": customer}).status_code == 200
    assert time.perf_counter() - quick < 1.0
    assert all(customer not in r.getMessage() for r in caplog.records)


def test_a_saturated_worker_answers_429_with_retry_after(limits: TestClient) -> None:
    RUNTIME.in_flight = RUNTIME.settings.max_cost_in_flight  # work of others in progress
    response = limits.post("/predict_batch", json=costly_batch(cutoffs=1))
    assert response.status_code == 429 and response.json()["error"] == "busy"
    assert int(response.headers["retry-after"]) >= 1
    RUNTIME.in_flight = 0
    assert limits.post("/predict_batch", json=costly_batch(cutoffs=1)).status_code == 200


def test_wrong_api_keys_are_logged_then_throttled(
    limits: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    from pydantic import SecretStr

    key = "limits-key-5678"
    RUNTIME.settings = RUNTIME.settings.model_copy(
        update={"api_key": SecretStr(key), "auth_attempts": 3, "auth_window": 60.0}
    )
    caplog.set_level(logging.INFO, logger="lifecycle.serving")
    body = {"customer_id": next(iter(RUNTIME.engine.lookup.index))}
    assert limits.post("/predict", json=body, headers={"X-API-Key": key}).status_code == 200
    statuses = [
        limits.post("/predict", json=body, headers={"X-API-Key": f"guess-{i}"}).status_code
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    # while throttled, even the right key waits: guessing gains nothing
    refused = limits.post("/predict", json=body, headers={"X-API-Key": key})
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    messages = [r.getMessage() for r in caplog.records]
    assert sum("401" in m for m in messages) == 3 and sum("429" in m for m in messages) == 2
    assert all(key not in m and "guess" not in m and body["customer_id"] not in m for m in messages)


def test_every_5xx_leaves_one_log_line(
    limits: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lifecycle.serving")
    engine, RUNTIME.engine = RUNTIME.engine, None
    try:
        response = limits.post("/predict", json={"customer_id": "someone-secret"})
    finally:
        RUNTIME.engine = engine
    assert response.status_code == 503
    lines = [r.getMessage() for r in caplog.records if "503" in r.getMessage()]
    assert len(lines) == 1 and "someone-secret" not in lines[0]


# ------------------------------------------------------------------ the real process


def worker_cpu(server: psutil.Process) -> float:
    """CPU seconds used so far by the server's processes (the worker does the work)."""
    total = 0.0
    for process in [server, *server.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def server_of(port: int) -> psutil.Process:
    for connection in psutil.net_connections("tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == "LISTEN":
            process = psutil.Process(connection.pid)
            while process.parent() is not None and "lifecycle" not in " ".join(process.cmdline()):
                process = process.parent()
            return process
    raise AssertionError(f"nothing listens on {port}")


def cpu_over(server: psutil.Process, seconds: float) -> float:
    before = worker_cpu(server)
    time.sleep(seconds)
    return worker_cpu(server) - before


@pytest.mark.slow
def test_real_server_stops_work_on_timeout_and_disconnect(world: World, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "BENTOML_"))}
    env |= {
        "MLFLOW_TRACKING_URI": world.tracking_uri,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "LIFECYCLE_MAX_COST": str(10**9),  # admit the 100 x 100 request to time it out
        "LIFECYCLE_WORK_TIMEOUT": "2",
        "LIFECYCLE_BODY_TIMEOUT": "1",
    }
    metrics = tmp_path / "metrics"
    args = [str(BIN / "lifecycle"), "serve", "--lookup", str(world.lookup), "--port", str(port)]
    args += ["--tracking-uri", world.tracking_uri, "--metrics-dir", str(metrics)]
    log = tmp_path / "serve.log"
    payload = json.dumps(costly_batch()).encode()
    with running(args, env, port, log) as url:
        server = server_of(port)
        idle = cpu_over(server, 1.0)
        # a body that never arrives: 408 after the body timeout, not a 504 after 10 s
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 100\r\n\r\n{"
            )
            started = time.perf_counter()
            sock.settimeout(10)
            first = sock.recv(4096).decode()
            waited = time.perf_counter() - started
        print(f"slow body: {first.splitlines()[0]} after {waited:.2f} s")
        assert first.startswith("HTTP/1.1 408") and waited < 2.5
        # a timeout ends the work: the worker is idle right after the 504
        started, busy = time.perf_counter(), worker_cpu(server)
        timed_out = httpx.post(
            f"{url}/predict_batch",
            content=payload,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        answered, busy = time.perf_counter() - started, worker_cpu(server) - busy
        after = cpu_over(server, 2.0)
        print(
            f"100 x 100: {timed_out.status_code} after {answered:.2f} s ({busy:.2f} CPU-s); "
            f"CPU in the 2 s after: {after:.2f} s (idle: {idle:.2f} s per second)"
        )
        assert busy > 0.5  # the measure sees the worker's work (2 s of it, on shared cores)
        assert timed_out.status_code == 504 and timed_out.json()["error"] == "timeout"
        assert answered < 2 + 2.0
        assert after < 0.3
        # a client that goes away: its work stops too
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /predict_batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            time.sleep(0.5)
        time.sleep(0.5)  # the next unit of work notices
        gone = cpu_over(server, 2.0)
        print(f"client gone after 0.5 s: CPU in the 2 s after: {gone:.2f} s")
        assert gone < 0.3
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert any(metrics.iterdir()), "the service's own Prometheus folder is empty"
        shared = tmp_path / "bentoml" / "prometheus_multiproc_dir"
        assert not shared.exists() or not any(shared.iterdir())
    text = log.read_text(errors="replace")
    assert "408" in text and "504 timeout" in text and "client went away" in text, text[-3000:]
