"""The service as real processes: `lifecycle serve` on a free port, and a built Bento served.

Each starts a server, waits for /readyz, calls it with a real HTTP client, and stops it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from importlib.metadata import version as package_version
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest

from lifecycle.serving.client import HttpClient, connect
from lifecycle.serving.engine import RequestError

from ..servers import BIN, ROOT, free_port, running
from .conftest import World

KEY = "process-test-key"


def service_env(world: World) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "BENTOML_"))}
    env["MLFLOW_TRACKING_URI"] = world.tracking_uri
    return env


def check_service(url: str, customer_id: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
        answer = http.post("/predict", json={"customer_id": customer_id})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["customer_id"] == customer_id and body["model_versions"]
        assert body["explanations"] and body["next_best_action"]["action"]
        assert http.post("/predict", json={"customer_id": "nobody"}).status_code == 404
        assert (
            http.post(
                "/predict", content=b"{", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        wrong = http.get("/predict")
        assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
        assert http.get("/livez").status_code == 200
        metrics = http.get("/metrics")
        assert metrics.status_code == 200 and "bentoml" in metrics.text


def a_customer(world: World) -> str:
    scores = pd.read_parquet(world.lookup, columns=["customer_id", "n_purchases"])
    return str(scores[scores["n_purchases"] > 0]["customer_id"].iloc[0])


@pytest.mark.slow
def test_lifecycle_serve_real_process(world: World, tmp_path: Path) -> None:
    """`lifecycle serve --events` scores the log at start-up; the key is read from the env."""
    port = free_port()
    env = service_env(world) | {"LIFECYCLE_API_KEY": KEY}
    args = [str(BIN / "lifecycle"), "serve", "--events", str(world.events), "--port", str(port)]
    args += ["--cutoff", "2025-12-01", "--tracking-uri", world.tracking_uri]
    log = tmp_path / "serve.log"
    with running(args, env, port, log) as url:
        assert httpx.post(f"{url}/predict", json={"customer_id": "x"}).status_code == 401
        check_service(url, a_customer(world), {"X-API-Key": KEY})
        info = httpx.get(f"{url}/model_info", headers={"X-API-Key": KEY}).json()
        assert info["lookup"]["source"] == str(world.events)
        # the Python client over real HTTP: answers, the API's errors as RequestError
        with connect(url, api_key=KEY) as remote:
            assert remote.transport == "http"
            customer = a_customer(world)
            assert remote.predict(customer_id=customer, top_k=2)["customer_id"] == customer
            batch = remote.predict_batch([{"customer_id": customer, "explain": False}] * 2)
            assert [a["customer_id"] for a in batch["items"]] == [customer, customer]
            assert remote.model_info()["lookup"] == info["lookup"]
            with pytest.raises(RequestError) as err:
                remote.predict(customer_id="nobody")
            assert (err.value.status, err.value.code) == (404, "unknown_customer")
        with HttpClient(url) as anonymous, pytest.raises(RequestError) as err:
            anonymous.predict(customer_id=customer)
        assert (err.value.status, err.value.code) == (401, "unauthorized")
    text = log.read_text(errors="replace")
    assert KEY not in text and a_customer(world) not in text


def test_lifecycle_serve_refuses_without_champions(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'none.db'}"
    done = subprocess.run(
        [str(BIN / "lifecycle"), "serve", "--tracking-uri", empty],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "no MLflow store" in done.stderr


@pytest.mark.slow
def test_bentoml_build_and_serve_the_bento(world: World, tmp_path: Path) -> None:
    """A built Bento served from another folder: relative paths are read from there, it
    listens on every interface (as in a container) and publishes the service's version."""
    env = service_env(world) | {"BENTOML_HOME": str(tmp_path / "bentoml")}
    built = subprocess.run(
        [str(BIN / "bentoml"), "build", str(ROOT), "--output", "tag"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("lifecycle:"), built.stdout
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    assert (bento / "src" / "pyproject.toml").is_file()  # the version, without the package
    # The user's folder, with the lookup table and the store given by relative paths
    work = tmp_path / "work"
    (work / "store").mkdir(parents=True)
    shutil.copy(world.lookup, work / "scores.parquet")
    with (
        closing(sqlite3.connect(world.root / "mlflow.db")) as source,
        closing(sqlite3.connect(work / "store" / "mlflow.db")) as copy,
    ):
        source.backup(copy)  # with what the write-ahead log holds
    env |= {
        "LIFECYCLE_LOOKUP": "scores.parquet",
        "MLFLOW_TRACKING_URI": "sqlite:///store/mlflow.db",
    }
    port = free_port()
    args = [str(BIN / "bentoml"), "serve", tag, "--port", str(port)]
    with running(args, env, port, tmp_path / "bento.log", cwd=work) as url:
        check_service(url, a_customer(world), {})
        info = httpx.get(f"{url}/model_info").json()
        assert info["lookup"]["source"] == str(work / "scores.parquet")
        spec = httpx.get(f"{url}/docs.json").json()
        assert spec["info"]["version"] == package_version("customer-lifecycle")
        listening = {
            c.laddr.ip
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"0.0.0.0"}, listening  # noqa: S104 (reachable via `docker run -p`)


def test_bento_requirements_match_the_lock() -> None:
    """serving/requirements.txt (what a containerized Bento installs) is the locked stack."""
    exported = subprocess.run(
        [
            *(
                str(BIN / "uv"),
                "export",
                "--frozen",
                "--no-dev",
                "--no-hashes",
                "--no-emit-project",
            ),
            *("--no-header", "--no-annotate", "--format", "requirements.txt", "--quiet"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert (ROOT / "serving" / "requirements.txt").read_text() == exported.stdout, (
        "serving/requirements.txt is stale: run `make bento-requirements`"
    )
