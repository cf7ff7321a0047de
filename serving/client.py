"""Python clients of the prediction API: over HTTP to a running service, or in-process.

Both speak the API's JSON: a request is the dict a ``/predict`` body would hold, an answer is
the dict the service would send back (times as ISO text, missing values as ``None``), and a
client's mistake raises :class:`~lifecycle.serving.errors.RequestError` with the service's status,
code,
message and fields. A script or notebook written against one runs unchanged on the other.

Importing this module is light: :class:`HttpClient` and the errors need httpx and pydantic
only; the engine (DuckDB, LightGBM, MLflow) is imported when an in-process client is made.

>>> client = connect("http://127.0.0.1:3000", api_key=key, tracking_uri="sqlite:///mlflow.db",
...                  lookup="demo/scores.parquet")  # doctest: +SKIP
>>> client.transport  # "http" when /readyz answered, else "in-process"  # doctest: +SKIP
>>> client.predict(customer_id="C0000001", lang="ko")["next_best_action"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from lifecycle.serving.errors import (
    RequestError,
    ServiceUnavailable,
    UnexpectedResponse,
    validation_fields,
)
from lifecycle.serving.schemas import BatchRequest, PredictRequest

if TYPE_CHECKING:
    from lifecycle.serving.engine import Engine

__all__ = [
    "HttpClient",
    "InProcessClient",
    "RequestError",
    "ServiceUnavailable",
    "Transport",
    "UnexpectedResponse",
    "connect",
]

Transport = Literal["http", "in-process"]


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
    transport
        An httpx transport (tests use ``httpx.MockTransport``); default: the network.

    Calls raise :class:`~lifecycle.serving.errors.RequestError` for the API's 4xx answers (the
    request's
    mistake), :class:`ServiceUnavailable` for 503, :class:`UnexpectedResponse` for anything
    that is not the API's JSON, and httpx's errors (such as ``httpx.TimeoutException``) when
    no answer comes.
    """

    transport: Transport = "http"

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.where = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.where, headers=headers, timeout=timeout, transport=transport
        )

    def ready(self, timeout: float = 5.0) -> bool:
        """Return whether the service answers ``/readyz`` with 200 (models loaded and warm)."""
        try:
            return self._http.get("/readyz", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def predict(self, **request: Any) -> dict[str, Any]:
        """POST ``/predict``; the fields: :class:`~lifecycle.serving.schemas.PredictRequest`."""
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
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UnexpectedResponse(
                f"{method} {path} answered {response.status_code} with something other than a "
                f"JSON object: {response.text[:200]!r}",
                response.status_code,
            )
        return answer


class InProcessClient:
    """The same API answered by an :class:`~lifecycle.serving.engine.Engine` in this process.

    Requests go through the same schema checks as the service's (JSON mode, strict), and
    answers through the same JSON encoding, so they equal what HTTP would return.
    """

    transport: Transport = "in-process"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.where = f"in-process ({', '.join(f'{n} v{v}' for n, v in engine.versions.items())})"

    def predict(self, **request: Any) -> dict[str, Any]:
        """Answer one request; the fields: :class:`~lifecycle.serving.schemas.PredictRequest`."""
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
    engine: Engine | None = None,
    fallback: bool = True,
    **settings: Any,
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
    engine
        An engine already loaded here, for the in-process client.
    fallback
        Answer in-process when the service is not ready; False raises ``ConnectionError``.
    **settings
        :class:`~lifecycle.serving.settings.ServeSettings` fields for the in-process engine, such as
        ``tracking_uri``, ``lookup``, ``events``, ``alias`` or ``currency``; the rest come from
        the ``LIFECYCLE_*`` variables, as for the service, so both answer alike.

    Returns
    -------
    HttpClient or InProcessClient
        ``transport`` says which.

    Raises
    ------
    ConnectionError
        When the service is not ready and ``fallback`` is False.
    lifecycle.serving.engine.ServiceError
        When the models cannot be loaded here.
    """
    if url is not None:
        remote = HttpClient(url, api_key=api_key, timeout=timeout)
        if remote.ready(timeout=min(timeout, 5.0)):
            return remote
        remote.close()
        if not fallback:
            raise ConnectionError(f"no service ready at {url} (GET /readyz)")
        warnings.warn(
            f"no service ready at {url} (GET /readyz): answering in-process", stacklevel=2
        )
    if engine is None:
        from lifecycle.serving.engine import Engine
        from lifecycle.serving.settings import ServeSettings

        engine = Engine.from_settings(ServeSettings(**settings))
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
    """Turn an error answer into the API's :class:`RequestError`, or say what else it was."""
    try:
        body = response.json()
    except ValueError:
        body = None
    api = isinstance(body, dict) and "error" in body and "message" in body
    if response.status_code == 503:
        hint = response.headers.get("retry-after", "")
        message = body["message"] if api else response.text[:200]
        return ServiceUnavailable(
            f"the service is not ready: {message}", float(hint) if hint.isdigit() else None
        )
    if api and response.status_code < 500:
        fields = [(f.get("field", ""), f.get("message", "")) for f in body.get("fields") or []]
        return RequestError(response.status_code, str(body["error"]), body["message"], fields)
    return UnexpectedResponse(
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code}: {response.text[:200]!r}",
        response.status_code,
    )
