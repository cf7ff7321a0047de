"""The prediction API through the ASGI app in-process: every input mode, every error class,
auth, batch parity, explanation additivity and agreement with shap, both languages, actions."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from lifecycle.features.schema import STAGES
from lifecycle.models.nba import recommend
from lifecycle.serving.engine import Engine
from lifecycle.serving.guard import RUNTIME
from lifecycle.serving.schemas import BatchResponse, ErrorResponse, ModelInfo, PredictResponse
from lifecycle.serving.settings import ServeSettings

from .conftest import CUTOFF, World

HANGUL = re.compile("[\uac00-\ud7a3]")
KEY = "test-key-7f3a"


@pytest.fixture
def engine(client: TestClient) -> Engine:
    return RUNTIME.engine  # type: ignore[no-any-return]


@pytest.fixture
def settings() -> Iterator[ServeSettings]:
    """Change the guard's settings for one test, then put them back."""
    saved = RUNTIME.settings
    yield saved
    RUNTIME.settings = saved


def some_ids(engine: Engine, n: int) -> list[str]:
    frame = engine.lookup.frame  # type: ignore[union-attr]
    buyers = frame[frame["n_purchases"] > 0]["customer_id"].tolist()
    browsers = frame[frame["n_purchases"] == 0]["customer_id"].tolist()
    return buyers[:1] if n == 1 else buyers[: n - 1] + browsers[:1]


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json=body, headers=headers)


def error_of(response: Any) -> ErrorResponse:
    return ErrorResponse.model_validate(response.json())


# ---------------------------------------------------------------- the three input modes


def test_lookup_mode_answers_the_whole_schema(client: TestClient, engine: Engine) -> None:
    cid = some_ids(engine, 1)[0]
    response = post(client, "/predict", {"customer_id": cid})
    assert response.status_code == 200, response.text
    answer = PredictResponse.model_validate(response.json())
    assert answer.customer_id == cid and answer.source == "lookup"
    assert answer.as_of is not None and answer.as_of.date().isoformat() == CUTOFF
    assert answer.stage in STAGES and answer.churn_risk is not None
    assert 0 < answer.churn_risk < 1
    clv = answer.clv
    assert 0 <= clv.p10 <= clv.median <= clv.p90  # type: ignore[operator]
    assert clv.expected > 0 and clv.expected_transactions is not None
    assert clv.p_no_purchase is not None and 0 < clv.p_no_purchase < 1
    assert answer.clv.currency == "USD" and answer.clv.horizon_days == 365
    assert set(answer.explanations) >= {"churn", "clv"}
    assert answer.model_versions == engine.versions
    assert {"lifecycle-next-stage", "lifecycle-churn", "lifecycle-clv"} <= set(
        answer.model_versions
    )
    assert answer.next_best_action.alternatives
    assert len(answer.explanations["churn"].drivers) == 5


def test_features_mode_gives_the_lookup_answer(client: TestClient, engine: Engine) -> None:
    cid = some_ids(engine, 1)[0]
    row = engine.lookup.frame.set_index("customer_id").loc[cid]  # type: ignore[union-attr]
    features = {
        name: (None if pd.isna(row[name]) else float(row[name])) for name in engine.feature_names
    }
    by_id = post(client, "/predict", {"customer_id": cid}).json()
    by_features = post(client, "/predict", {"features": features, "as_of": CUTOFF}).json()
    assert by_features["source"] == "features" and by_features["customer_id"] is None
    for key in ("stage", "next_stage_probability", "churn_risk", "clv", "segment", "explanations"):
        assert by_features[key] == by_id[key], key


def test_events_mode_computes_the_training_features(
    client: TestClient, engine: Engine, customer_events: pd.DataFrame
) -> None:
    """A customer's raw events, scored on the spot, give what batch scoring gave."""
    cut = pd.Timestamp(CUTOFF, tz="UTC")
    for cid in some_ids(engine, 3):
        mine = customer_events[
            (customer_events["customer_id"] == cid) & (customer_events["event_ts"] < cut)
        ]
        events = [
            {
                "customer_id": cid,
                "event_ts": ts.isoformat(),
                "event_type": kind,
                "revenue": None if pd.isna(rev) else float(rev),
                "channel": None if pd.isna(ch) else ch,
                "campaign_id": None if pd.isna(camp) else camp,
            }
            for ts, kind, rev, ch, camp in mine[
                ["event_ts", "event_type", "revenue", "channel", "campaign_id"]
            ].itertuples(index=False)
        ]
        fresh = post(client, "/predict", {"events": events, "as_of": CUTOFF})
        assert fresh.status_code == 200, fresh.text
        fresh_answer = fresh.json()
        looked_up = post(client, "/predict", {"customer_id": cid}).json()
        assert fresh_answer["source"] == "events" and fresh_answer["customer_id"] == cid
        for key in ("stage", "segment", "next_stage_probability", "churn_risk", "clv"):
            assert fresh_answer[key] == looked_up[key], (cid, key)


def test_events_mode_without_as_of_scores_now(client: TestClient) -> None:
    events = [
        {"event_ts": "2026-03-01T10:00:00Z", "event_type": "visit"},
        {"event_ts": "2026-03-02T10:00:00Z", "event_type": "signup"},
        {"event_ts": "2026-03-05", "event_type": "purchase", "revenue": 42.5},
    ]
    response = post(client, "/predict", {"events": events})
    assert response.status_code == 200, response.text
    answer = PredictResponse.model_validate(response.json())
    assert answer.stage == "conversion" and answer.customer_id is None
    assert answer.as_of is not None and abs(time.time() - answer.as_of.timestamp()) < 120


# ---------------------------------------------------------------- errors: 4xx, never 5xx


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": 5}, "customer_id"),
        ({"customer_id": "C1", "top_k": "5"}, "top_k"),
        ({"customer_id": "C1", "explain": "yes"}, "explain"),
        ({"customer_id": "C1", "lang": "fr"}, "lang"),
        ({"customer_id": "C1", "top_k": 0}, "top_k"),
        ({"customer_id": "C1", "colour": "red"}, "colour"),
        ({}, "body"),
        ({"customer_id": "C1", "features": {}}, "body"),
        ({"features": {"n_events": "3"}}, "features.n_events"),
        ({"events": []}, "events"),
        ({"events": [{"event_type": "visit"}]}, "events[0].event_ts"),
        ({"events": [{"event_ts": "soon", "event_type": "visit"}]}, "events[0].event_ts"),
        ({"events": [{"event_ts": 1700000000, "event_type": "visit"}]}, "events[0].event_ts"),
        ({"events": [{"event_ts": "2025-01-01", "event_type": "visit", "x": 1}]}, "events[0].x"),
        ({"items": "C1"}, "items"),
    ],
)
def test_schema_errors_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    path = "/predict_batch" if "items" in body else "/predict"
    response = post(client, path, body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error.error == "invalid_request"
    assert field in [f.field for f in error.fields], error.fields


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_refused(client: TestClient, literal: bytes) -> None:
    body = b'{"features": {"n_events": ' + literal + b"}}"
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"] in ("invalid_json", "invalid_request")


def test_transport_errors(client: TestClient) -> None:
    json_header = {"content-type": "application/json"}
    cases = [
        (client.post("/predict", content=b"{not json", headers=json_header), 400, "invalid_json"),
        (client.post("/predict", content=b"", headers=json_header), 400, "empty_body"),
        (client.post("/predict", content=b"[1, 2", headers=json_header), 400, "invalid_json"),
        (
            client.post(
                "/predict", content=b'{"customer_id": "C1"}', headers={"content-type": "text/plain"}
            ),
            415,
            "unsupported_media_type",
        ),
        (client.post("/predict", content=b'{"customer_id": "C1"}'), 415, "unsupported_media_type"),
        (
            client.post("/predict", content=b" " * (1024 * 1024 + 1), headers=json_header),
            413,
            "body_too_large",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (code, response.text)
        assert error_of(response).error == code


def test_body_over_the_limit_without_length_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_semantic_errors(client: TestClient, engine: Engine) -> None:
    unknown = post(client, "/predict", {"customer_id": "NOT-A-CUSTOMER"})
    assert unknown.status_code == 404 and error_of(unknown).error == "unknown_customer"
    assert "NOT-A-CUSTOMER" not in unknown.text  # ids are not echoed back
    bad_type = post(
        client, "/predict", {"events": [{"event_ts": "2025-01-01", "event_type": "teleport"}]}
    )
    assert bad_type.status_code == 422, bad_type.text
    assert error_of(bad_type).fields[0].field == "events[0]"
    assert "event_type" in error_of(bad_type).fields[0].message
    late = post(
        client,
        "/predict",
        {"events": [{"event_ts": "2025-06-01", "event_type": "visit"}], "as_of": "2025-05-01"},
    )
    assert late.status_code == 422 and error_of(late).fields[0].field == "events[0].event_ts"
    future = post(
        client, "/predict", {"events": [{"event_ts": "2999-01-01", "event_type": "visit"}]}
    )
    assert future.status_code == 422
    mixed = post(
        client,
        "/predict",
        {
            "events": [
                {"customer_id": "a", "event_ts": "2025-01-01", "event_type": "visit"},
                {"customer_id": "b", "event_ts": "2025-01-02", "event_type": "visit"},
            ]
        },
    )
    assert mixed.status_code == 422 and error_of(mixed).error == "mixed_customers"
    row = {name: 0.0 for name in engine.feature_names}
    row["n_events"] = -3.0
    row["stage_code"] = 9.0
    row["rfm_r"] = 2.5
    row["days_since_first_event"] = None  # type: ignore[assignment]
    row["not_a_feature"] = 1.0
    del row["n_purchases"]
    invalid = post(client, "/predict", {"features": row})
    assert invalid.status_code == 422
    fields = {f.field for f in error_of(invalid).fields}
    assert {
        "features",
        "features.n_events",
        "features.stage_code",
        "features.rfm_r",
        "features.days_since_first_event",
        "features.not_a_feature",
    } <= fields


def test_huge_revenue_is_refused_not_a_500(client: TestClient) -> None:
    event = {"event_ts": "2025-01-01", "event_type": "purchase", "revenue": 1e13}
    response = post(client, "/predict", {"events": [event]})
    assert response.status_code == 422
    assert error_of(response).fields[0].field == "events[0].revenue"


def test_events_without_a_lookup_table_are_refused(engine: Engine) -> None:
    """Raw events need the lookup table's RFM scale: refused rather than scored on no scale."""
    from dataclasses import replace

    from lifecycle.serving.engine import RequestError
    from lifecycle.serving.schemas import PredictRequest

    bare = replace(engine, lookup=None)
    request = PredictRequest.model_validate(
        {"events": [{"event_ts": "2025-01-01", "event_type": "visit"}], "as_of": CUTOFF}
    )
    with pytest.raises(RequestError) as caught:
        bare.predict([request])
    assert caught.value.status == 404 and caught.value.code == "no_lookup_table"


def test_batch_over_the_limit_is_422_before_any_model_runs(
    client: TestClient, engine: Engine, settings: ServeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    RUNTIME.settings = settings.model_copy(update={"max_batch": 3})

    def must_not_run(*_: Any) -> None:
        raise AssertionError("a model ran")

    monkeypatch.setattr(engine, "predict", must_not_run)
    items = [{"customer_id": cid} for cid in some_ids(engine, 4)]
    response = post(client, "/predict_batch", {"items": items})
    assert response.status_code == 422 and error_of(response).error == "batch_too_large"


def test_errors_inside_a_batch_name_the_item(client: TestClient, engine: Engine) -> None:
    items = [{"customer_id": some_ids(engine, 1)[0]}, {"customer_id": "NOPE"}]
    response = post(client, "/predict_batch", {"items": items})
    assert response.status_code == 404
    assert error_of(response).fields[0].field == "items[1].customer_id"
    bad = post(client, "/predict_batch", {"items": [{"customer_id": "a"}, {"top_k": 3}]})
    assert bad.status_code == 422 and error_of(bad).fields[0].field == "items[1]"
    single = post(client, "/predict_batch", {"items": [{"customer_id": "NOPE"}]})
    assert error_of(single).fields[0].field == "items[0].customer_id"


def test_not_found_routes_and_methods_are_4xx(client: TestClient) -> None:
    assert client.post("/nowhere", json={}).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/predict", "POST"),
        ("PUT", "/predict_batch", "POST"),
        ("DELETE", "/model_info", "GET, POST"),
        ("OPTIONS", "/predict", "POST"),  # not a CORS preflight
    ],
)
def test_wrong_method_is_405_in_the_json_error_shape(
    client: TestClient, settings: ServeSettings, method: str, path: str, allow: str
) -> None:
    RUNTIME.settings = settings.model_copy(update={"api_key": SecretStr(KEY)})
    answer = client.request(method, path)  # no key: the method is wrong whoever asks
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == "application/json"
    error = error_of(answer)
    assert error.error == "method_not_allowed" and method in error.message


# ---------------------------------------------------------------- auth


def test_api_key(client: TestClient, engine: Engine, settings: ServeSettings) -> None:
    RUNTIME.settings = settings.model_copy(update={"api_key": SecretStr(KEY)})
    cid = some_ids(engine, 1)[0]
    assert post(client, "/predict", {"customer_id": cid}).status_code == 401
    assert (
        post(client, "/predict", {"customer_id": cid}, authorization="Bearer wrong").status_code
        == 401
    )
    assert client.get("/model_info").status_code == 401
    ok_bearer = post(client, "/predict", {"customer_id": cid}, authorization=f"Bearer {KEY}")
    ok_header = post(client, "/predict", {"customer_id": cid}, **{"x-api-key": KEY})
    assert ok_bearer.status_code == ok_header.status_code == 200
    assert error_of(post(client, "/predict", {})).error == "unauthorized"  # before parsing
    for open_path in ("/readyz", "/livez", "/docs.json"):
        assert client.get(open_path).status_code == 200, open_path
    RUNTIME.settings = settings
    assert post(client, "/predict", {"customer_id": cid}).status_code == 200


def test_logs_hold_no_keys_or_customer_ids(
    client: TestClient, engine: Engine, settings: ServeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    RUNTIME.settings = settings.model_copy(update={"api_key": SecretStr(KEY)})
    cid = some_ids(engine, 1)[0]
    with caplog.at_level(logging.INFO):
        post(client, "/predict", {"customer_id": cid}, authorization=f"Bearer {KEY}")
        post(client, "/predict", {"customer_id": "SECRET-ID"}, authorization=f"Bearer {KEY}")
        post(client, "/predict", {"customer_id": 7}, authorization="Bearer not-the-key")
    assert KEY not in caplog.text and cid not in caplog.text and "SECRET-ID" not in caplog.text


# ---------------------------------------------------------------- batch, explanations, language


def test_batch_equals_one_by_one(
    client: TestClient, engine: Engine, customer_events: pd.DataFrame
) -> None:
    ids = some_ids(engine, 4)
    row = engine.lookup.frame.set_index("customer_id").loc[ids[0]]  # type: ignore[union-attr]
    features = {n: (None if pd.isna(row[n]) else float(row[n])) for n in engine.feature_names}
    items: list[dict[str, Any]] = [{"customer_id": cid} for cid in ids]
    items += [
        {"customer_id": ids[1], "lang": "ko", "top_k": 2},
        {"customer_id": ids[2], "explain": False},
        {"features": features, "as_of": CUTOFF},
        {"events": [{"event_ts": "2025-10-01", "event_type": "visit"}], "as_of": CUTOFF},
    ]
    batch = post(client, "/predict_batch", {"items": items})
    assert batch.status_code == 200, batch.text
    answers = BatchResponse.model_validate(batch.json())
    assert answers.model_versions == engine.versions
    one_by_one = [post(client, "/predict", item).json() for item in items]
    assert batch.json()["items"] == one_by_one


def test_explanations_add_up_to_the_raw_output(engine: Engine) -> None:
    x = engine.lookup.x[:300]  # type: ignore[union-attr]
    for model in engine.models.values():
        xm = x if model.columns is None else x[:, model.columns]
        contrib = model.estimator.contributions_matrix(xm, threads=1)
        raw = model.estimator.raw_score_matrix(xm, threads=1)
        np.testing.assert_allclose(contrib.sum(axis=1), raw, rtol=0, atol=1e-9)


def test_native_tree_shap_agrees_with_shap(engine: Engine) -> None:
    shap = pytest.importorskip("shap")
    x = engine.lookup.x[:200]  # type: ignore[union-attr]
    for model in engine.models.values():
        xm = x if model.columns is None else x[:, model.columns]
        estimator = model.estimator
        booster = estimator.booster_
        design = estimator.design_matrix(xm)  # a hybrid's booster also sees the BTYD columns
        native = booster.predict(
            design, pred_contrib=True, num_iteration=booster.best_iteration or None
        )
        explainer = shap.TreeExplainer(booster)
        values = np.asarray(explainer.shap_values(design))
        np.testing.assert_allclose(native[:, :-1], values, rtol=0, atol=1e-6)
        base = float(np.ravel(explainer.expected_value)[0])
        np.testing.assert_allclose(native[:, -1], base, rtol=0, atol=1e-6)
        # what the service explains: the same values folded onto the features, plus the
        # BTYD margin, adding up to the model's raw score
        served = estimator.contributions_matrix(xm, threads=1)
        assert served.shape == (len(xm), xm.shape[1] + 1)
        np.testing.assert_allclose(
            served.sum(axis=1), estimator.raw_score_matrix(xm), rtol=0, atol=1e-6
        )


def test_response_explanation_is_consistent(client: TestClient, engine: Engine) -> None:
    """Drivers are the largest SHAP values of the served model; raw_output is their total."""
    cid = some_ids(engine, 1)[0]
    answer = post(client, "/predict", {"customer_id": cid, "top_k": 20}).json()
    row = engine.lookup.x[engine.lookup.index[cid]][None, :]  # type: ignore[union-attr]
    for task, explanation in answer["explanations"].items():
        model = engine.models[task]
        xm = row if model.columns is None else row[:, model.columns]
        contrib = model.estimator.contributions_matrix(xm, threads=1)[0]
        assert explanation["base_value"] == contrib[-1]
        assert abs(explanation["raw_output"] - contrib.sum()) < 1e-9
        names = model.estimator.feature_names
        largest = sorted(range(len(names)), key=lambda i: -abs(contrib[i]))[:20]
        shown = [d["feature"] for d in explanation["drivers"]]
        assert shown == [names[i] for i in largest if contrib[i] != 0][: len(shown)]
        for driver in explanation["drivers"]:
            assert driver["contribution"] == contrib[names.index(driver["feature"])]
            assert driver["direction"] == ("up" if driver["contribution"] > 0 else "down")


def test_both_languages(client: TestClient, engine: Engine) -> None:
    cid = some_ids(engine, 1)[0]
    english = post(client, "/predict", {"customer_id": cid, "lang": "en"}).json()
    korean = post(client, "/predict", {"customer_id": cid, "lang": "ko"}).json()
    for answer, is_korean in ((english, False), (korean, True)):
        texts = [d["text"] for e in answer["explanations"].values() for d in e["drivers"]]
        texts += [answer["next_best_action"]["name"], answer["next_best_action"]["reason"]]
        assert all(bool(HANGUL.search(t)) is is_korean for t in texts), texts
    assert english["churn_risk"] == korean["churn_risk"]


def test_next_best_action_follows_the_policy(client: TestClient, engine: Engine) -> None:
    """The served action is the policy's choice on the served predictions, with the uplift."""
    assert engine.uplift is not None
    for cid in some_ids(engine, 4):
        answer = post(client, "/predict", {"customer_id": cid}).json()
        row = engine.lookup.x[engine.lookup.index[cid]]  # type: ignore[union-attr]
        cols = engine.uplift.columns
        uplift = engine.uplift.estimator.predict_matrix(
            row[None, :] if cols is None else row[None, cols]
        )
        expected = recommend(
            engine.catalog,
            stage=answer["stage"],
            segment=answer["segment"]["name"],
            predictions={
                "next_stage_probability": answer["next_stage_probability"],
                "churn_risk": answer["churn_risk"],
                "clv": answer["clv"]["expected"],
            },
            uplift={k: float(v[0]) for k, v in uplift.items()},
        )
        action = answer["next_best_action"]
        assert action["action"] == expected.action
        assert action["expected_value"] == expected.expected_value
        offer = next(a.offer for a in engine.catalog.actions if a.id == action["action"])
        assert action["effect_source"] == ("estimated" if offer else "assumed")
        assert len(action["alternatives"]) <= 2
        if action["outcome"] == "retention" and "Top driver: " in action["reason"]:
            cited = action["reason"].split("Top driver: ", 1)[1]
            raising = [
                d["text"]
                for d in answer["explanations"]["churn"]["drivers"]
                if d["direction"] == "up" and d["lever"] and not d["as_typical"]
            ]
            assert cited == raising[0]  # a win-back cites what raises churn risk (not offers)


def test_model_info_and_openapi(client: TestClient, engine: Engine) -> None:
    posted = client.post("/model_info", json={})
    fetched = client.get("/model_info")
    assert posted.status_code == fetched.status_code == 200
    info = ModelInfo.model_validate(fetched.json())
    assert posted.json() == fetched.json()
    assert info.feature_names == engine.feature_names
    assert info.models["churn"].metrics["roc_auc"] > 0.5
    assert info.models["clv"].horizon_days == 365 and info.models["churn"].trained_on
    assert info.lookup["customers"] == len(engine.lookup.index)  # type: ignore[union-attr]
    assert info.uplift is not None
    spec = client.get("/docs.json").json()
    assert spec["info"]["title"] == "Customer lifecycle API"
    assert spec["info"]["version"] == package_version("customer-lifecycle") != "None"
    assert "/model_info" in spec["info"]["description"]
    assert "BentoML" not in json.dumps(spec["info"])  # not BentoML's boilerplate README
    assert {"/predict", "/predict_batch", "/model_info"} <= set(spec["paths"])
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    assert {"customer_id", "events"} <= set(
        spec["components"]["schemas"]["PredictRequest"]["properties"]
    )


def test_openapi_is_exact(client: TestClient, settings: ServeSettings) -> None:
    """Nulls, every status, the key's two headers and GET /model_info, as the service does."""
    spec = client.get("/docs.json").json()
    assert spec["openapi"] == "3.1.0"  # schemas are JSON Schema: null is a type
    schemas = spec["components"]["schemas"]
    answer = schemas["PredictResponse"]["properties"]
    assert answer["next_stage"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert {"type": "null"} in answer["churn_risk"]["anyOf"]
    assert {"type": "null"} in schemas["Clv"]["properties"]["median"]["anyOf"]
    assert "oneOf" in schemas["PredictRequest"]  # exactly one of customer_id, events, features
    assert set(spec["paths"]["/model_info"]) == {"get", "post"}
    predict = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "404", "408", "413", "415", "422", "429", "503", "504"} <= set(predict)
    assert predict["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "Retry-After" in predict["503"]["headers"]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "X-API-Key" and schemes["apiKey"]["in"] == "header"
    assert "security" not in spec["paths"]["/predict"]["post"]  # no key: nothing to send
    assert "401" not in predict
    RUNTIME.settings = settings.model_copy(update={"api_key": SecretStr(KEY)})
    keyed = client.get("/docs.json").json()  # the document stays open
    operation = keyed["paths"]["/model_info"]["get"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"401", "429"} <= set(operation["responses"])
    assert "security" not in keyed["paths"]["/readyz"]["get"]
    for path in ("/readyz", "/livez"):
        assert set(keyed["paths"][path]["get"]["responses"]) == {"200", "503"}


def test_not_ready_is_503(world: World) -> None:
    """Until the engine is loaded, API calls get 503 and a reason (health stays BentoML's)."""
    import asyncio

    from lifecycle.serving.guard import RequestGuard, Runtime

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not be reached")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    guard = RequestGuard(app, Runtime(settings=ServeSettings()))
    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": []}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 503


def test_model_names_merge_with_the_defaults(world: World) -> None:
    from lifecycle.serving.engine import ServiceError

    with pytest.raises(ServiceError, match="unknown task"):
        Engine.load(tracking_uri=world.tracking_uri, names={"bogus": "x"})
    with pytest.raises(ServiceError, match="no version of my-churn"):
        Engine.load(tracking_uri=world.tracking_uri, names={"churn": "my-churn"})
