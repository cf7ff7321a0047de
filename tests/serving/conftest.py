"""One small trained world for the serving tests: simulate, train, promote, learn uplift, score.

Session-scoped (about a minute on two cores): a real SQLite MLflow store with champion
versions of the three models and of the uplift model, and the lookup table `lifecycle score`
writes, exactly what `make demo` builds at a smaller scale.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.simulate import simulate

CUTOFF = "2025-12-01"


@dataclass(frozen=True)
class World:
    """Paths of the trained world."""

    root: Path
    events: Path
    campaigns: Path
    tracking_uri: str
    lookup: Path


def _run(runner: CliRunner, args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    simulate(2500, seed=11, out_dir=root / "sim", days=1460)
    events = root / "sim" / "events.parquet"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = root / "training.yaml"
    config.write_text(
        "max_train_cutoffs: 2\nreport_customer_split: false\nbaselines: [rfm]\n"
        "shap_sample: 100\ntuning: {trials: 1}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    common = ["--tracking-uri", uri]
    _run(
        runner,
        [
            *("train", "--events", str(events), "--config", str(config), "--json", *common),
            *("--report-dir", str(root / "reports")),
        ],
    )
    _run(runner, ["promote", *common])
    _run(
        runner,
        [
            *("uplift", "--events", str(events)),
            *("--campaigns", str(root / "sim" / "campaigns.parquet")),
            *("--max-campaigns", "24", "--json", *common),
        ],
    )
    lookup = root / "scores.parquet"
    out = _run(
        runner,
        [
            *("score", "--events", str(events), "--cutoff", CUTOFF),
            *("--out", str(lookup), "--json", *common),
        ],
    )
    assert json.loads(out.strip().splitlines()[-1])["customers"] > 0
    return World(root, events, root / "sim" / "campaigns.parquet", uri, lookup)


@pytest.fixture(scope="session")
def customer_events(world: World) -> pd.DataFrame:
    """Every event of the simulation, for building /predict requests from raw events."""
    return pd.read_parquet(world.events)


@pytest.fixture(scope="session")
def client(world: World) -> Iterator[TestClient]:
    """The service's ASGI app in-process, ready (one per session: BentoML registers its
    Prometheus metrics globally, so a second app in the same process would clash)."""
    from lifecycle.serving.guard import RUNTIME
    from lifecycle.serving.service import LifecycleService
    from lifecycle.serving.settings import ServeSettings

    RUNTIME.settings = ServeSettings(
        tracking_uri=world.tracking_uri, lookup=world.lookup, events=world.events
    )
    with TestClient(LifecycleService.to_asgi()) as test_client:
        assert RUNTIME.loading.wait(120)
        deadline = time.monotonic() + 60
        while test_client.get("/readyz").status_code != 200:
            assert RUNTIME.failure is None, RUNTIME.failure
            assert time.monotonic() < deadline, "service never became ready"
            time.sleep(0.2)
        yield test_client


API_KEY = "page-key-1234"
"""The API key of the ``keyed`` client."""


@pytest.fixture
def keyed(client: TestClient) -> Iterator[TestClient]:
    """The session's client against the service with :data:`API_KEY` set, without cookies."""
    from lifecycle.serving.guard import RUNTIME

    saved = RUNTIME.settings
    RUNTIME.settings = saved.model_copy(update={"api_key": SecretStr(API_KEY)})
    client.cookies.clear()
    yield client
    RUNTIME.settings = saved
    client.cookies.clear()
