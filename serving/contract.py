"""The API's OpenAPI document, exact: what the service answers, built from the pydantic schemas.

BentoML writes an OpenAPI 3.0 document whose schemas lose every ``null`` (a loyalty customer's
``next_stage`` is documented as a string), whose responses are 200/400/404/500 with its own error
shapes, with no security scheme and without ``GET /model_info``. A client generated from it
breaks on the first null. :func:`openapi_document` rewrites the API's paths from the models in
:mod:`lifecycle.serving.schemas` as pydantic publishes them (JSON Schema 2020-12, so the document
is OpenAPI 3.1, whose schemas are JSON Schema: ``anyOf`` with ``{"type": "null"}``), lists every
status the guard and the engine answer with the JSON error shape, and declares the two ways to
send the API key. BentoML's infrastructure routes (``/livez``, ``/readyz``, ``/metrics``) keep
their descriptions, with their real media types and the 503 of a service not (yet) ready.

Kept free of BentoML (pydantic only): a test reads the document without starting a service.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from lifecycle.serving.guard import METHODS
from lifecycle.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ModelInfo,
    ModelInfoRequest,
    PlanRequest,
    PlanResponse,
    PredictRequest,
    PredictResponse,
    ReloadInfo,
    ReloadRequest,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The service's API key: `Authorization: Bearer <key>`.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same key in its own header.",
    },
}

_BODY_ERRORS = {
    "400": "The body is empty or not valid JSON (`empty_body`, `invalid_json`).",
    "408": "The body did not arrive within `LIFECYCLE_BODY_TIMEOUT` seconds (`body_timeout`).",
    "413": "The body is over the size limit (`body_too_large`).",
    "415": "The body is not `application/json` (`unsupported_media_type`).",
    "422": "The body does not match the schema (`invalid_request`): every field at fault.",
    "429": "The worker is busy with other work (`busy`; `Retry-After`).",
}
_PREDICT_ERRORS = {
    **_BODY_ERRORS,
    "404": "An unknown customer, or no lookup table (`unknown_customer`, ...).",
    "422": "The request does not match the schema, or cannot be scored (`invalid_request`, "
    "`invalid_events`, `invalid_features`, `not_applicable`, `batch_too_large`, "
    "`too_costly`, ...): every field at fault.",
    "504": "The work took more than `LIFECYCLE_WORK_TIMEOUT` seconds and was stopped "
    "(`timeout`), or BentoML's traffic timeout answered (`{error}` only).",
}
_ERRORS: dict[str, dict[str, str]] = {
    "/predict": _PREDICT_ERRORS,
    "/predict_batch": _PREDICT_ERRORS,
    "/model_info": _BODY_ERRORS,
    "/reload": {
        **_BODY_ERRORS,
        "409": "The new versions failed their checks; the old ones still serve (`reload_failed`).",
    },
    "/plan": {
        **_BODY_ERRORS,
        "404": "No lookup table: no customers to plan for (`no_lookup_table`).",
        "422": "The request does not match the schema (`invalid_request`: a budget that is not "
        "above 0, a count budget that is not whole, a negative cost, ...) or a cost is given "
        "for an action the catalog does not have, or for the no-action (`unknown_action`): "
        "every field at fault.",
    },
}
_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "/predict": (PredictRequest, PredictResponse),
    "/predict_batch": (BatchRequest, BatchResponse),
    "/model_info": (ModelInfoRequest, ModelInfo),
    "/reload": (ReloadRequest, ReloadInfo),
    "/plan": (PlanRequest, PlanResponse),
}
_SUMMARIES = {
    ("/predict", "post"): "Predict for one customer: by id, by raw events, or by a feature row.",
    ("/predict_batch", "post"): "Predict for several customers; each item is a /predict request.",
    ("/model_info", "get"): "The served versions, training period, metrics, features, reloads.",
    ("/model_info", "post"): "The same as `GET /model_info`, with no body or `{}`.",
    ("/reload", "post"): "Serve the versions holding the alias now (load, check, warm, swap).",
    ("/plan", "post"): "A budgeted next-best-action plan: per action, totals, first contacts.",
}
_STILL_LOADING = (
    "The new versions are still loading (`loading` true); the old ones serve until the swap, "
    "and `GET /model_info` tells under `reload` how the attempt ended."
)
_SERVER_ERROR = "An unexpected failure (BentoML's `{error}`; never a client's mistake)."
_NOT_READY = "The models are loading, or the service could not start (`not_ready`)."
_UNAUTHORIZED = "No API key, or a wrong one (`unauthorized`)."
_THROTTLED = "Too many wrong keys from this address (`too_many_attempts`; `Retry-After`)."
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _schemas() -> tuple[dict[Any, Any], dict[str, Any]]:
    """Every API model's JSON schema (requests as validated, answers as serialized)."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (PredictRequest, "validation"),
        (BatchRequest, "validation"),
        (ModelInfoRequest, "validation"),
        (ReloadRequest, "validation"),
        (PlanRequest, "validation"),
        (PredictResponse, "serialization"),
        (BatchResponse, "serialization"),
        (ModelInfo, "serialization"),
        (ReloadInfo, "serialization"),
        (PlanResponse, "serialization"),
        (ErrorResponse, "serialization"),
    ]
    refs, document = models_json_schema(models, ref_template=REF)
    return refs, document.get("$defs", {})


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(
    bentoml_document: dict[str, Any], *, api_key: bool, actions: Sequence[str] | None = None
) -> dict[str, Any]:
    """Return the exact OpenAPI 3.1 document of the API, from the one BentoML generated.

    Parameters
    ----------
    bentoml_document
        BentoML's document as a dict (its ``info`` and infrastructure routes are kept).
    api_key
        Whether the service has an API key: the API's operations then require one of the two
        security schemes (always declared) and document the 401 and the throttle's 429.
    actions
        The served catalog's actions whose cost ``POST /plan`` may override: the only keys
        its ``costs`` take (None: any key, refused with 422 when unknown).

    Returns
    -------
    dict
        The document served at ``/docs.json``.

    Examples
    --------
    >>> doc = openapi_document({"info": {"title": "t", "version": "1"}, "paths": {}}, api_key=True)
    >>> doc["openapi"], sorted(doc["paths"]["/model_info"])
    ('3.1.0', ['get', 'post'])
    >>> doc["components"]["schemas"]["PredictResponse"]["properties"]["next_stage"]["anyOf"]
    [{'type': 'string'}, {'type': 'null'}]
    """
    refs, schemas = _schemas()
    if actions is not None:
        _name_costs(schemas["PlanRequest"], actions)
    error = refs[(ErrorResponse, "serialization")]
    server_error = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    }
    paths: dict[str, Any] = {}
    for path, (request, response) in _MODELS.items():
        if path not in METHODS:
            continue  # not served
        paths[path] = {}
        for method in (m.lower() for m in METHODS[path]):
            errors = _ERRORS[path] if method == "post" else {}
            responses: dict[str, Any] = {"200": _json(refs[(response, "serialization")], "OK.")}
            for status, description in errors.items():
                responses[status] = _json(error, description)
            if path == "/reload" and method == "post":
                responses["202"] = _json(refs[(response, "serialization")], _STILL_LOADING)
            if api_key:
                responses["401"] = _json(error, _UNAUTHORIZED)
                busy = responses.get("429", {}).get("description", "")
                responses["429"] = _json(error, f"{_THROTTLED} {busy}".strip())
            if "429" in responses:
                responses["429"]["headers"] = _RETRY_AFTER
            responses["503"] = {**_json(error, _NOT_READY), "headers": _RETRY_AFTER}
            responses["500"] = _json(server_error, _SERVER_ERROR)
            if "504" in responses:  # ours or BentoML's traffic timeout
                responses["504"] = _json({"anyOf": [error, server_error]}, errors["504"])
            operation: dict[str, Any] = {
                "tags": ["Service APIs"],
                "operationId": f"{method}_{path.strip('/')}",
                "summary": _SUMMARIES[(path, method)],
                "responses": dict(sorted(responses.items())),
            }
            if method == "post":
                operation["requestBody"] = {
                    # model_info and reload take no body, or {}
                    "required": request not in (ModelInfoRequest, ReloadRequest),
                    "content": {"application/json": {"schema": refs[(request, "validation")]}},
                }
            if api_key:
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            paths[path][method] = operation
    for path, item in bentoml_document.get("paths", {}).items():
        if path in _MODELS or "get" not in item:
            continue  # BentoML's infrastructure routes, with their real answers
        item = copy.deepcopy(item)
        responses = item["get"].setdefault("responses", {})
        if path == "/metrics":
            responses["200"] = {
                "description": "Prometheus metrics (text format).",
                "content": _TEXT,
            }
        else:
            responses["200"] = {"description": "Alive / ready (an empty line).", "content": _TEXT}
            responses["503"] = {"description": "Not alive / not ready (yet).", "content": _TEXT}
        paths[path] = item
    document = {
        "openapi": OPENAPI_VERSION,
        "info": bentoml_document["info"],
        "servers": bentoml_document.get("servers", [{"url": "."}]),
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
    }
    if "tags" in bentoml_document:
        document["tags"] = bentoml_document["tags"]
    return document


def _name_costs(plan_request: dict[str, Any], actions: Sequence[str]) -> None:
    """Let the plan request's ``costs`` take the catalog's action ids only."""
    for option in plan_request["properties"]["costs"].get("anyOf", []):
        if option.get("type") == "object":
            option["propertyNames"] = {"enum": list(actions)}
