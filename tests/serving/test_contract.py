"""The OpenAPI document is what the service does: schemathesis against the ASGI app, bounded.

Every check schemathesis has (no 5xx, responses match their documented schema and status,
negative data refused, unsupported methods 405, missing or wrong keys refused, ...), on every
phase that applies (the schema's examples, its coverage of boundaries and invalid values, and
random fuzzing), with the service's API key set. The same run fails on the service's document
with the answers' nulls dropped, as BentoML published them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from lifecycle.serving.guard import RUNTIME

KEY = "contract-key-5c2e"
MAX_EXAMPLES = 100
"""Per operation and phase (seeded): 881 requests in about 25 s on two cores."""


@dataclass
class Run:
    """What one schemathesis run sent and found."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    """Requests per operation and status, e.g. ``POST /predict 200``."""
    failures: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def fuzz(
    app: Any, *, document: dict[str, Any] | None = None, max_examples: int = MAX_EXAMPLES
) -> Run:
    """Run every schemathesis phase and check against the app; count requests and failures."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events, from_schema

    config = SchemathesisConfig.from_dict(
        {
            "seed": 17,
            "cache": {"enabled": False},
            "generation": {"mode": "all", "max-examples": max_examples},
            "checks": {"enabled": True},
            "auth": {"openapi": {"bearer": {"bearer": KEY}, "apiKey": {"api_key": KEY}}},
            "operations": [
                {
                    # Schema-valid is not always scorable: the event types and the feature
                    # names are the served models', events must be plausible and before
                    # as_of. Those answers are the documented 422 naming the field.
                    "include-path": ["/predict", "/predict_batch"],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "404", "409", "422", "429"]
                        }
                    },
                }
            ],
        }
    )
    if document is None:
        schema = schemathesis.openapi.from_asgi("/docs.json", app, config=config)
    else:
        schema = schemathesis.openapi.from_dict(document, config=config)
        schema.app = app
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(str(getattr(event, "info", None) or event))
        if not isinstance(event, events.ScenarioFinished):
            continue
        for interaction in event.recorder.interactions.values():
            run.requests += 1
            if interaction.response is not None:
                run.statuses[interaction.response.status_code] += 1
                run.answered[f"{event.recorder.label} {interaction.response.status_code}"] += 1
        for case_id, checks in event.recorder.checks.items():
            sent = event.recorder.interactions.get(case_id)
            answer = sent.response if sent is not None else None
            for check in checks:
                if check.status == Status.FAILURE:
                    message = str(check.failure_info.failure) if check.failure_info else ""
                    body = answer.content[:200].decode(errors="replace") if answer else ""
                    run.failures.setdefault(check.name, []).append(
                        f"{event.recorder.label}: {message[:300]} -> {body}"
                    )
    return run


def running(app: Any) -> Any:
    """The app the session's client started, without a second start-up by schemathesis.

    schemathesis runs an ASGI app's lifespan once per process: for this app that would start
    a second service (loading the models again, with 503s meanwhile).
    """

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    return serve


@pytest.fixture
def keyed(client: TestClient, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The running service with an API key (and room for schemathesis's wrong keys)."""
    # `bentoml serve` sets this for /metrics; in-process nothing does.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    saved = RUNTIME.settings
    RUNTIME.settings = saved.model_copy(
        update={"api_key": SecretStr(KEY), "auth_attempts": 1_000_000}
    )
    RUNTIME._throttle = None  # made again from these settings on first use
    yield running(client.app)
    RUNTIME.settings = saved
    RUNTIME._throttle = None


def test_the_service_keeps_its_documented_contract(keyed: TestClient) -> None:
    run = fuzz(keyed)
    print(
        json.dumps(
            {
                "requests": run.requests,
                "statuses": dict(sorted(run.statuses.items())),
                "answered": dict(sorted(run.answered.items())),
                "failures": run.failures,
                "errors": run.errors,
            },
            indent=1,
        )
    )
    assert not run.errors
    assert not run.failures
    assert not [s for s in run.statuses if s >= 500]
    assert run.requests > 500


def drop_nulls(schema: Any) -> Any:
    """The schema as BentoML published it: ``anyOf: [X, null]`` becomes ``X``."""
    if isinstance(schema, list):
        return [drop_nulls(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        kept = [o for o in options if o != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        merged = {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}
        return drop_nulls(merged)
    return {key: drop_nulls(value) for key, value in schema.items()}


def test_a_document_that_drops_nulls_fails_the_run(client: TestClient, keyed: Any) -> None:
    """The run can fail: the answers' schemas without their nulls, as BentoML published them."""
    document = client.get("/docs.json").json()
    schemas = document["components"]["schemas"]
    for name in ("PredictResponse", "Clv", "Driver", "ModelInfo", "ServedModelInfo"):
        schemas[name] = drop_nulls(schemas[name])
    assert schemas["PredictResponse"]["properties"]["next_stage"]["type"] == "string"
    run = fuzz(keyed, document=document, max_examples=10)
    assert "response_schema_conformance" in run.failures, run.failures
    print(json.dumps({"requests": run.requests, "failures": run.failures}, indent=1))
