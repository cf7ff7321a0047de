"""Python clients of the prediction API: over HTTP to a running service, or in-process.

Both speak the API's JSON: a request is the dict a ``/predict`` body would hold, an answer is
the dict the service would send back (times as ISO text, missing values as ``None``), and a
client's mistake raises :class:`~serving.engine.RequestError` with the service's status, code,
message and fields. A script or notebook written against one runs unchanged on the other.

>>> client = connect("http://127.0.0.1:3000", api_key=key, tracking_uri="sqlite:///mlflow.db",
...                  lookup="demo/scores.parquet")  # doctest: +SKIP
>>> client.transport  # "http" when /readyz answered, else "in-process"  # doctest: +SKIP
>>> client.predict(customer_id="C0000001", lang="ko")["next_best_action"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from serving.engine import Engine, RequestError
from serving.guard import validation_fields
from serving.schemas import BatchRequest, PredictRequest

Transport = Literal["http", "in-process"]


class LifecycleClient(Protocol):
    """What both clients offer."""

    transport: Transport
    where: str

    def predict(self, **request: Any) -> dict[str, Any]:
        """Answer one ``/predict`` request given as keyword arguments."""

    def predict_batch(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Answer a ``/predict_batch`` request: ``{"items": [...], "model_versions": {...}}``."""

    def model_info(self) -> dict[str, Any]:
        """Describe the served models, features and lookup table (``/model_info``)."""

    def close(self) -> None:
        """Release the connection or the models."""


class HttpClient:
    """The service over HTTP, with httpx.

    Parameters
    ----------
    url
        Base URL, such as ``http://127.0.0.1:3000``.
    api_key
        Sent as ``Authorization: Bearer <key>`` when the service has one.
    timeout
        Seconds for one call (a 1,000-customer batch with explanations takes about 2 s).
    """

    transport: Transport = "http"

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.where = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.where, headers=headers, timeout=timeout)

    def ready(self) -> bool:
        """Return whether the service answers ``/readyz`` with 200 (models loaded and warm)."""
        try:
            return self._http.get("/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def predict(self, **request: Any) -> dict[str, Any]:
        """POST ``/predict``; see :class:`serving.schemas.PredictRequest` for the fields."""
        return self._call("POST", "/predict", request)

    def predict_batch(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """POST ``/predict_batch`` with ``items``; the answers come back in order."""
        return self._call("POST", "/predict_batch", {"items": list(items)})

    def model_info(self) -> dict[str, Any]:
        """GET ``/model_info``."""
        return self._call("GET", "/model_info", None)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        content = None if body is None else to_json(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        response = self._http.request(method, path, content=content, headers=headers)
        if response.status_code >= 400:
            raise _http_error(response)
        return dict(response.json())


class InProcessClient:
    """The same API answered by an :class:`~serving.engine.Engine` in this process.

    Requests go through the same schema checks as the service's (JSON mode, strict), and
    answers through the same JSON encoding, so they equal what HTTP would return.
    """

    transport: Transport = "in-process"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.where = f"in-process ({', '.join(f'{n} v{v}' for n, v in engine.versions.items())})"

    def predict(self, **request: Any) -> dict[str, Any]:
        """Answer one request; see :class:`serving.schemas.PredictRequest` for the fields."""
        parsed = _parse(PredictRequest, request)
        return _plain(self.engine.predict([parsed])[0])

    def predict_batch(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Answer a batch; the answers come back in order."""
        parsed = _parse(BatchRequest, {"items": list(items)})
        answers = self.engine.predict(parsed.items, batch=True)
        return _plain({"items": answers, "model_versions": self.engine.versions})

    def model_info(self) -> dict[str, Any]:
        """Describe the served models, features and lookup table."""
        return _plain(self.engine.model_info())

    def close(self) -> None:
        """Nothing to release (the engine is garbage collected with the client)."""

    def __enter__(self) -> InProcessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str | None = None,
    *,
    api_key: str | None = None,
    timeout: float = 30.0,
    tracking_uri: str | None = None,
    lookup: str | Path | None = None,
    events: str | Path | None = None,
    alias: str = "champion",
    engine: Engine | None = None,
) -> HttpClient | InProcessClient:
    """Return an HTTP client when the service at ``url`` is ready, else an in-process one.

    Parameters
    ----------
    url
        The running service (``lifecycle serve``, ``make demo``); None goes in-process.
    api_key
        The service's API key, if it has one.
    timeout
        Seconds for one HTTP call.
    tracking_uri, lookup, events, alias
        For the in-process engine (:meth:`serving.engine.Engine.load`): the MLflow store
        holding the champions, the lookup table ``lifecycle score`` wrote, the events behind
        it, and the registry alias.
    engine
        An engine already loaded here, used instead of loading one.

    Returns
    -------
    HttpClient or InProcessClient
        ``transport`` says which.

    Raises
    ------
    serving.engine.ServiceError
        When no service answers and the models cannot be loaded here.
    """
    if url is not None:
        remote = HttpClient(url, api_key=api_key, timeout=timeout)
        if remote.ready():
            return remote
        remote.close()
    if engine is None:
        engine = Engine.load(tracking_uri=tracking_uri, lookup=lookup, events=events, alias=alias)
    return InProcessClient(engine)


def _parse(model: type[BaseModel], body: Mapping[str, Any]) -> Any:
    """Validate ``body`` as the service's guard does, raising its 422 on a mismatch."""
    try:
        return model.model_validate_json(to_json(body))
    except ValidationError as exc:
        fields = [(p["field"], p["message"]) for p in validation_fields(exc)]
        raise RequestError(
            422, "invalid_request", "the request does not match the API", fields
        ) from exc


def _plain(answer: Any) -> dict[str, Any]:
    """Encode an answer as the service does (pydantic's JSON: NaN -> null, times as ISO)."""
    return dict(json.loads(to_json(answer)))


def _http_error(response: httpx.Response) -> Exception:
    """Turn an error response into :class:`RequestError` (the API's JSON) or an HTTP error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body and "message" in body:
        fields = [(f.get("field", ""), f.get("message", "")) for f in body.get("fields") or []]
        return RequestError(response.status_code, str(body["error"]), body["message"], fields)
    return httpx.HTTPStatusError(
        f"{response.status_code} from {response.request.url}: {response.text[:200]}",
        request=response.request,
        response=response,
    )
