"""The Python clients of the API: in-process answers equal the service's, errors are the API's."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from lifecycle.serving.client import (
    HttpClient,
    InProcessClient,
    ServiceUnavailable,
    UnexpectedResponse,
    connect,
)
from lifecycle.serving.engine import Engine, RequestError
from lifecycle.serving.guard import RUNTIME

from ..servers import free_port


@pytest.fixture
def local(client: TestClient) -> InProcessClient:
    """An in-process client on the engine the ASGI service (the `client` fixture) loaded."""
    return InProcessClient(RUNTIME.engine)


def buyers(engine: Engine, n: int) -> list[str]:
    frame = engine.lookup.frame  # type: ignore[union-attr]
    return frame.loc[frame["n_purchases"] > 0, "customer_id"].head(n).tolist()


def test_in_process_answers_equal_the_services_json(client: TestClient, local: InProcessClient):
    ids = buyers(local.engine, 3)
    for lang in ("en", "ko"):
        served = client.post("/predict", json={"customer_id": ids[0], "lang": lang, "top_k": 2})
        assert served.status_code == 200
        assert local.predict(customer_id=ids[0], lang=lang, top_k=2) == served.json()
    items = [{"customer_id": c, "explain": False} for c in ids]
    served = client.post("/predict_batch", json={"items": items}).json()
    assert local.predict_batch(items) == served
    assert local.model_info() == client.get("/model_info").json()


def test_in_process_errors_are_the_services(client: TestClient, local: InProcessClient):
    bad = {"customer_id": "nobody"}
    with pytest.raises(RequestError) as err:
        local.predict(**bad)
    assert (err.value.status, err.value.code) == (404, "unknown_customer")
    assert err.value.body() == client.post("/predict", json=bad).json()
    bad = {"customer_id": buyers(local.engine, 1)[0], "top_k": 0, "bogus": 1}
    with pytest.raises(RequestError) as err:
        local.predict(**bad)
    assert (err.value.status, err.value.code) == (422, "invalid_request")
    assert {field for field, _ in err.value.fields} == {"top_k", "bogus"}
    assert err.value.body() == client.post("/predict", json=bad).json()


def test_connect_falls_back_to_in_process_when_no_service_answers(local: InProcessClient):
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.warns(UserWarning, match="no service ready at"):
        chosen = connect(closed, engine=local.engine)
    assert chosen.transport == "in-process" and chosen.where.startswith("in-process")
    assert connect(None, engine=local.engine).transport == "in-process"
    with pytest.raises(ConnectionError, match="no service ready"):
        connect(closed, engine=local.engine, fallback=False)


def mock(status: int, body: bytes, **headers: str) -> HttpClient:
    """An HttpClient whose every call gets this answer."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return HttpClient("http://service", transport=httpx.MockTransport(answer))


def test_http_errors_say_what_went_wrong():
    api_error = b'{"error": "unknown_customer", "message": "not in the table", "fields": []}'
    with pytest.raises(RequestError) as err:
        mock(404, api_error).predict(customer_id="x")
    assert (err.value.status, err.value.code, err.value.message) == (
        404,
        "unknown_customer",
        "not in the table",
    )
    not_ready = b'{"error": "not_ready", "message": "the models are still loading", "fields": []}'
    with pytest.raises(ServiceUnavailable, match="still loading") as down:
        mock(503, not_ready, **{"retry-after": "5"}).predict(customer_id="x")
    assert down.value.retry_after == 5.0
    with pytest.raises(UnexpectedResponse, match="answered 502") as bad:
        mock(502, b"<html>bad gateway</html>").model_info()
    assert bad.value.status == 502
    with pytest.raises(UnexpectedResponse, match="JSON object"):
        mock(200, b"[1, 2]").model_info()
    with pytest.raises(UnexpectedResponse, match="JSON object"):
        mock(200, b"not json").predict(customer_id="x")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    client = HttpClient("http://service", transport=httpx.MockTransport(slow))
    assert not client.ready()
    with pytest.raises(httpx.TimeoutException):
        client.predict(customer_id="x")


def test_engine_explanation_is_what_predict_explains(local: InProcessClient):
    ids = buyers(local.engine, 4)
    explanation = local.engine.explanation("churn", ids)
    assert explanation.values.shape == (4, len(explanation.feature_names))
    for i, cid in enumerate(ids):
        answer = local.predict(customer_id=cid, top_k=1)["explanations"]["churn"]
        total = explanation.base_values[i] + explanation.values[i].sum()
        assert np.isclose(total, answer["raw_output"])
        assert np.isclose(explanation.base_values[i], answer["base_value"])
    with pytest.raises(RequestError) as err:
        local.engine.explanation("churn", ["nobody"])
    assert err.value.status == 404
    frame = local.engine.lookup.frame  # type: ignore[union-attr]
    never_bought = frame.loc[frame["n_purchases"] == 0, "customer_id"].iloc[0]
    with pytest.raises(RequestError) as err:
        local.engine.explanation("churn", [ids[0], never_bought])
    assert (err.value.status, err.value.code) == (422, "not_applicable")
    assert [f for f, _ in err.value.fields] == ["customer_ids[1]"]
    assert local.engine.explanation("clv", []).values.shape == (0, len(explanation.feature_names))
