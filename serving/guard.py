"""The gate in front of the API: auth, body size, content type, JSON and schema checks.

A pure ASGI middleware that BentoML runs before its own request handling, so every client
mistake is answered here with a 4xx JSON error naming the field, and never reaches a handler
that could turn it into a 500 or log the request's content:

- 405 for a method the route does not take (``GET /predict``), with an ``Allow`` header;
- 401 without the API key (when one is set): ``Authorization: Bearer <key>`` or ``X-API-Key``;
- 503 until the models are loaded and warmed up;
- 415 for a body that is not ``application/json``; 413 over the size limit (checked on the
  declared length and again while reading, for chunked bodies);
- 400 for an empty body or malformed JSON; 422 for a body that does not match the schema
  (every problem, each with its field path) and for a batch over the limit.

Health (``/livez``, ``/readyz``), ``/metrics`` and the API docs stay open.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from lifecycle.serving.errors import validation_fields
from lifecycle.serving.schemas import BatchRequest, ModelInfoRequest, PredictRequest
from lifecycle.serving.settings import ServeSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "/predict": PredictRequest,
    "/predict_batch": BatchRequest,
    "/model_info": ModelInfoRequest,
}
METHODS: dict[str, tuple[str, ...]] = {
    "/predict": ("POST",),
    "/predict_batch": ("POST",),
    "/model_info": ("GET", "POST"),
}
"""The methods each API route answers; any other gets 405 with an ``Allow`` header."""
STATE_KEY = "lifecycle_request"


class Runtime:
    """What one worker process serves: its settings, and the engine once it is ready.

    Holds nothing read from the environment until the service starts: the guard and the page
    are given the runtime when the service class is defined, and the service reads the
    ``LIFECYCLE_*`` settings when it starts (its ``__init__``), unless they were set before
    (tests do). Nothing reads the environment on import.

    Parameters
    ----------
    settings
        The settings to serve with; default: read from the environment on first use.
    """

    def __init__(self, settings: ServeSettings | None = None) -> None:
        self._settings = settings
        self.engine: Any = None
        self.failure: str | None = None
        self.loading = threading.Event()

    @property
    def settings(self) -> ServeSettings:
        """The settings served with; read from the ``LIFECYCLE_*`` variables on first use."""
        if self._settings is None:
            self._settings = ServeSettings()
        return self._settings

    @settings.setter
    def settings(self, value: ServeSettings) -> None:
        self._settings = value


RUNTIME = Runtime()
"""The worker's runtime, filled by the service at start-up and read by the guard and the page."""


def error_body(status: int, code: str, message: str, fields: list[dict[str, str]]) -> bytes:
    """Return the JSON of an error (see :class:`lifecycle.serving.schemas.ErrorResponse`)."""
    return json.dumps({"error": code, "message": message, "fields": fields}).encode()


class RequestGuard:
    """ASGI middleware; see the module docstring for what it answers and with which status."""

    def __init__(self, app: ASGIApp, runtime: Runtime = RUNTIME) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check an API request and pass it on with its body, or answer the error."""
        model = REQUEST_MODELS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if model is None:
            await self.app(scope, receive, send)
            return
        settings = self.runtime.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, allowed = scope.get("method", ""), METHODS[scope["path"]]
        if method == "OPTIONS" and "access-control-request-method" in headers:
            await self.app(scope, receive, send)  # a CORS preflight: BentoML's CORS answers it
            return
        if method not in allowed:
            await _reply(
                send,
                405,
                "method_not_allowed",
                f"{scope['path']} takes {' or '.join(allowed)} with a JSON body (got {method})",
                [],
                extra=[(b"allow", ", ".join(allowed).encode())],
            )
            return
        if settings.api_key is not None and not _authorized(headers, settings.api_key):
            await _reply(
                send,
                401,
                "unauthorized",
                "this service needs an API key: send 'Authorization: Bearer <key>' or "
                "'X-API-Key: <key>'",
                [],
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        if self.runtime.engine is None:
            reason = self.runtime.failure or "the models are still loading"
            await _reply(send, 503, "not_ready", reason, [], extra=[(b"retry-after", b"5")])
            return
        if method == "GET":  # /model_info, the only route that takes GET
            body = to_json(self.runtime.engine.model_info())  # NaN -> null, as /predict
            await _send(send, 200, body)
            return
        read = await self._body(scope, receive, send, headers, model is ModelInfoRequest)
        if read is None:
            return
        body = read
        try:
            parsed = model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                await _reply(send, 400, "invalid_json", "the body is not valid JSON", [])
            else:
                problems = validation_fields(exc)
                await _reply(
                    send, 422, "invalid_request", "the request does not match the API", problems
                )
            return
        if isinstance(parsed, BatchRequest) and len(parsed.items) > settings.max_batch:
            await _reply(
                send,
                422,
                "batch_too_large",
                f"a batch holds at most {settings.max_batch} items; got {len(parsed.items)}",
                [{"field": "items", "message": f"at most {settings.max_batch} items"}],
            )
            return
        scope.setdefault("state", {})[STATE_KEY] = parsed
        await self.app(scope, _replay(body, receive), send)

    async def _body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        empty_ok: bool,
    ) -> bytes | None:
        """Read the body within the limits, or answer the error and return None."""
        limit = self.runtime.settings.max_body_bytes
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, "body_too_large", _too_large(limit), [])
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(send, 413, "body_too_large", _too_large(limit), [])
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not body.strip():
            if empty_ok:
                return b""
            await _reply(send, 400, "empty_body", "the request has no body; send JSON", [])
            return None
        if media != "application/json":
            shown = media or "none"
            await _reply(
                send,
                415,
                "unsupported_media_type",
                f"send the body as application/json (got {shown})",
                [{"field": "content-type", "message": "must be application/json"}],
            )
            return None
        return body


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit:,} bytes; split a large batch into several calls"


def _authorized(headers: dict[str, str], key: Any) -> bool:
    expected = key.get_secret_value().encode()
    given = headers.get("x-api-key", "")
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        given = given or auth[7:].strip()
    return bool(given) and hmac.compare_digest(given.encode(), expected)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _reply(
    send: Send,
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]],
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _send(send, status, error_body(status, code, message, fields), extra)
