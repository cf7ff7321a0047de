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
  (every problem, each with its field path) and for a batch over the limit;
- 408 for a body that does not arrive within ``LIFECYCLE_BODY_TIMEOUT`` seconds;
- 422 for a request costing more than ``LIFECYCLE_MAX_COST`` (:func:`request_cost`: feature
  builds per distinct ``as_of``, items with events, explanations), and 429 with
  ``Retry-After`` while the work already in progress would go over ``LIFECYCLE_MAX_COST_IN_FLIGHT``;
- 429 with ``Retry-After`` for an address after ``LIFECYCLE_AUTH_ATTEMPTS`` wrong keys within
  ``LIFECYCLE_AUTH_WINDOW`` seconds (shared with the page's sign-in, :class:`Throttle`).

Every admitted request carries a :class:`Work` (its cost, deadline and stop flag) that the
engine checks between units of work: the work stops after ``LIFECYCLE_WORK_TIMEOUT`` seconds
(504), when the client goes away, or when BentoML's traffic timeout cancels the request.
Every 5xx, timeout, refused key and throttled address leaves one log line, without the key,
the body or any customer id.

Health (``/livez``, ``/readyz``), ``/metrics`` and the API docs stay open.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from lifecycle.serving.errors import RequestError, validation_fields
from lifecycle.serving.schemas import (
    BatchRequest,
    ModelInfoRequest,
    PlanRequest,
    PredictRequest,
    ReloadRequest,
)
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
    "/reload": ReloadRequest,
    "/plan": PlanRequest,
}
METHODS: dict[str, tuple[str, ...]] = {
    "/predict": ("POST",),
    "/predict_batch": ("POST",),
    "/model_info": ("GET", "POST"),
    "/reload": ("POST",),
    "/plan": ("POST",),
}
"""The methods each API route answers; any other gets 405 with an ``Allow`` header."""
STATE_KEY = "lifecycle_request"
WORK_KEY = "lifecycle_work"
"""Where the guard leaves the request's :class:`Work` in the ASGI scope's ``state``."""

log = logging.getLogger("lifecycle.serving")

COST_PER_ITEM = 1
"""Cost units of one item looked up or given as a feature row (a unit is about 1 ms of a core)."""
COST_PER_EXPLAINED = 5
"""Tree SHAP of the three models for one row: about 4.5 ms on the 2-core reference machine."""
COST_PER_EVENT_ITEM = 10
"""Validating one item's raw events: about 7 ms measured, whatever their number."""
COST_PER_BUILD = 100
"""One feature build (a DuckDB query) per distinct cutoff: 60-75 ms alone, ~190 ms under load."""
EVENTS_PER_UNIT = 100
"""Raw events that cost one more unit (a build's time barely grows with its events)."""
COST_PER_PLAN = 1000
"""A budgeted plan (``POST /plan``): measured 0.17 s for 2,418 customers, 0.8 s for 19,344."""


def request_cost(request: BaseModel) -> int:
    """Return the work a request asks for, in cost units (about a millisecond of one core).

    The cost is dominated by feature builds: items scored from raw ``events`` are grouped by
    their ``as_of`` cutoff (items without one share "now") and each distinct cutoff is one
    DuckDB build, so 100 items with 100 different ``as_of`` cost a hundred times one.

    Parameters
    ----------
    request
        A validated :class:`PredictRequest` or :class:`BatchRequest`, or a
        :class:`PlanRequest` (:data:`COST_PER_PLAN`); anything else costs 0.

    Returns
    -------
    int
        ``items + 5 x explained items + 10 x items with events + 100 x distinct cutoffs of
        those items + events // 100``.

    Examples
    --------
    >>> one = {"events": [{"event_ts": "2025-01-02T00:00:00Z", "event_type": "visit"}]}
    >>> request_cost(PredictRequest.model_validate(one))
    116
    >>> items = [{**one, "as_of": f"2025-02-{day:02d}T00:00:00Z"} for day in range(1, 11)]
    >>> request_cost(BatchRequest.model_validate({"items": items}))
    1160
    """
    if isinstance(request, PlanRequest):
        return COST_PER_PLAN  # a kept plan costs less; the guard cannot know it is kept
    if isinstance(request, PredictRequest):
        items = [request]
    elif isinstance(request, BatchRequest):
        items = list(request.items)
    else:
        return 0
    cutoffs: set[datetime | None] = set()
    event_items = events = explained = 0
    for item in items:
        explained += bool(item.explain)
        if item.events is not None:
            event_items += 1
            events += len(item.events)
            cutoffs.add(None if item.as_of is None else _utc(item.as_of))
    return (
        COST_PER_ITEM * len(items)
        + COST_PER_EXPLAINED * explained
        + COST_PER_EVENT_ITEM * event_items
        + COST_PER_BUILD * len(cutoffs)
        + events // EVENTS_PER_UNIT
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Work:
    """One admitted request's work: its cost, its deadline, and why it must stop.

    The engine calls :meth:`check` between units of work (each item's events, each feature
    build, the scoring): once the deadline has passed, the client has gone or the request was
    cancelled, the next check raises, so the worker is free within one unit.

    Parameters
    ----------
    cost
        The request's cost (:func:`request_cost`).
    seconds
        How long the work may run.

    Examples
    --------
    >>> work = Work(cost=10, seconds=60)
    >>> work.check()  # in time: nothing happens
    >>> work.stop("client_gone")
    >>> try:
    ...     work.check()
    ... except RequestError as exc:
    ...     print(exc.status, exc.code)
    499 client_gone
    """

    def __init__(self, cost: int, seconds: float) -> None:
        self.cost = cost
        self.seconds = seconds
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.stopped: str | None = None

    def stop(self, reason: str) -> None:
        """Ask the work to stop at its next check (the first reason given is kept)."""
        if self.stopped is None:
            self.stopped = reason

    def check(self) -> None:
        """Raise :class:`RequestError` when the work must stop; else return at once."""
        if self.stopped is None and time.monotonic() > self.deadline:
            self.stopped = "timeout"
        if self.stopped is None:
            return
        if self.stopped == "timeout":
            raise RequestError(
                504,
                "timeout",
                f"the request took more than {self.seconds:g} s and its work was stopped; "
                "send fewer items, or fewer distinct as_of values, per call",
                [],
            )
        raise RequestError(499, self.stopped, f"the work was stopped ({self.stopped})", [])


class Throttle:
    """Count failed sign-ins and wrong API keys per client address; refuse after a few.

    After ``attempts`` failures within ``window`` seconds an address is refused (429) until
    the oldest of them is ``window`` seconds old; a success clears its count. Thread-safe (the
    page's views run in threads); holds at most ``limit`` addresses.

    Examples
    --------
    >>> throttle = Throttle(attempts=2, window=60)
    >>> throttle.failed("10.0.0.1"); throttle.failed("10.0.0.1")
    >>> throttle.wait("10.0.0.1") > 0, throttle.wait("10.0.0.2")
    (True, 0.0)
    """

    def __init__(self, attempts: int, window: float, limit: int = 10_000) -> None:
        self.attempts, self.window, self.limit = attempts, window, limit
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str) -> float:
        """Return the seconds before ``address`` may try again (0.0 when it may now)."""
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(address)
            if not times:
                return 0.0
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.attempts:
                return 0.0
            return max(times[0] + self.window - now, 0.001)

    def failed(self, address: str) -> None:
        """Count one failure of ``address``."""
        now = time.monotonic()
        with self._lock:
            if address not in self._failures and len(self._failures) >= self.limit:
                cutoff = now - self.window
                for old in [a for a, t in self._failures.items() if not t or t[-1] <= cutoff]:
                    del self._failures[old]
                if len(self._failures) >= self.limit:  # still full: forget the oldest
                    del self._failures[next(iter(self._failures))]
            self._failures.setdefault(address, deque(maxlen=self.attempts)).append(now)

    def succeeded(self, address: str) -> None:
        """Forget the failures of ``address`` (it has the key)."""
        with self._lock:
            self._failures.pop(address, None)


def client_address(scope: Scope, headers: dict[str, str], trust_proxy: bool) -> str:
    """Return the client's address: the proxy's ``X-Forwarded-For`` entry when trusted.

    Behind a trusted proxy the last entry is the address the proxy saw (earlier ones are the
    client's own claims); otherwise the connection's peer.

    Examples
    --------
    >>> scope = {"client": ("10.0.0.9", 5000)}
    >>> client_address(scope, {"x-forwarded-for": "1.2.3.4, 5.6.7.8"}, trust_proxy=True)
    '5.6.7.8'
    >>> client_address(scope, {"x-forwarded-for": "1.2.3.4"}, trust_proxy=False)
    '10.0.0.9'
    """
    forwarded = headers.get("x-forwarded-for", "")
    if trust_proxy and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def forwarded_https(headers: dict[str, str]) -> bool:
    """Return whether a proxy says the request was https (``X-Forwarded-Proto``, ``Forwarded``).

    Only to be believed behind a trusted proxy (``LIFECYCLE_TRUST_PROXY``).

    Examples
    --------
    >>> forwarded_https({"x-forwarded-proto": "https"})
    True
    >>> forwarded_https({"forwarded": "for=1.2.3.4;proto=https"}), forwarded_https({})
    (True, False)
    """
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto:
        return proto == "https"
    first = headers.get("forwarded", "").split(",")[0]
    pairs = (p.split("=", 1) for p in first.split(";") if "=" in p)
    return any(
        k.strip().lower() == "proto" and v.strip().strip('"').lower() == "https" for k, v in pairs
    )


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
        self.in_flight = 0
        """Cost of the work admitted and not finished (changed on the event loop only)."""
        self._throttle: Throttle | None = None

    @property
    def throttle(self) -> Throttle:
        """The worker's :class:`Throttle` of wrong keys, made from the settings on first use."""
        if self._throttle is None:
            settings = self.settings
            self._throttle = Throttle(settings.auth_attempts, settings.auth_window)
        return self._throttle

    @property
    def settings(self) -> ServeSettings:
        """The settings served with; read from the ``LIFECYCLE_*`` variables on first use."""
        if self._settings is None:
            self._settings = ServeSettings()
        return self._settings

    @settings.setter
    def settings(self, value: ServeSettings) -> None:
        self._settings = value
        self._throttle = None


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
        route = f"{method} {scope['path']}"
        if settings.api_key is not None:
            address = client_address(scope, headers, settings.trust_proxy)
            wait = self.runtime.throttle.wait(address)
            if wait:
                log.warning("%s: 429, an address refused for too many wrong API keys", route)
                await _reply(
                    send,
                    429,
                    "too_many_attempts",
                    f"too many wrong API keys from this address; try again in {math.ceil(wait)} s",
                    [],
                    extra=[(b"retry-after", str(math.ceil(wait)).encode())],
                )
                return
            if not _authorized(headers, settings.api_key):
                self.runtime.throttle.failed(address)
                log.warning("%s: 401, a missing or wrong API key", route)
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
            self.runtime.throttle.succeeded(address)
        if self.runtime.engine is None:
            reason = self.runtime.failure or "the models are still loading"
            log.warning("%s: 503, not ready (%s)", route, reason)
            await _reply(send, 503, "not_ready", reason, [], extra=[(b"retry-after", b"5")])
            return
        if method == "GET":  # /model_info, the only route that takes GET
            body = to_json(self.runtime.engine.model_info())  # NaN -> null, as /predict
            await _send(send, 200, body)
            return
        try:
            with anyio.fail_after(settings.body_timeout):
                read = await self._body(
                    scope, receive, send, headers, model in (ModelInfoRequest, ReloadRequest)
                )
        except TimeoutError:
            log.warning("%s: 408, the body did not arrive in %g s", route, settings.body_timeout)
            await _reply(
                send,
                408,
                "body_timeout",
                f"the request body did not arrive within {settings.body_timeout:g} s",
                [],
                extra=[(b"connection", b"close")],
            )
            return
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
        cost = request_cost(parsed)
        if cost > settings.max_cost:
            await _reply(
                send,
                422,
                "too_costly",
                f"this request asks for about {cost:,} units of work; the limit is "
                f"{settings.max_cost:,} (LIFECYCLE_MAX_COST): each distinct as_of of items with "
                f"events costs {COST_PER_BUILD} (a feature build), each item with events "
                f"{COST_PER_EVENT_ITEM}, each explained item {COST_PER_EXPLAINED}; split the "
                "batch or send fewer distinct as_of values per call",
                [{"field": "items", "message": f"costs {cost:,}, at most {settings.max_cost:,}"}],
            )
            return
        busy = self.runtime.in_flight
        if busy and busy + cost > settings.max_cost_in_flight:
            retry = str(max(1, math.ceil(busy / 1000)))
            log.info("%s: 429, the worker is busy (cost %d in progress)", route, busy)
            await _reply(
                send,
                429,
                "busy",
                f"the service is busy with other requests; try again in {retry} s",
                [],
                extra=[(b"retry-after", retry.encode())],
            )
            return
        scope.setdefault("state", {})[STATE_KEY] = parsed
        work = scope["state"][WORK_KEY] = Work(cost, settings.work_timeout)
        self.runtime.in_flight += cost
        try:
            await self._run(scope, _Replay(body, receive, work), send, work, route)
        finally:
            self.runtime.in_flight -= cost
            work.stop("finished")  # an abandoned thread stops at its next check

    async def _run(self, scope: Scope, replay: _Replay, send: Send, work: Work, route: str) -> None:
        """Run the API with a watch for the client going away; log 5xx and timeouts."""
        answer: dict[str, Any] = {}

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif answer.get("status", 0) >= 500 and "code" not in answer:
                answer["code"] = _error_code(message.get("body", b""))
            await send(message)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(replay.watch, answer)
                await self.app(scope, replay, watched)
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            work.stop("cancelled")
            log.warning(
                "%s: cancelled after %.1f s (the traffic timeout, or the client went away); "
                "its work was stopped",
                route,
                time.monotonic() - work.started,
            )
            raise
        status = answer.get("status", 0)
        spent = time.monotonic() - work.started
        if work.stopped == "client_gone":  # gone before the answer (see _Replay.watch)
            log.warning("%s: the client went away after %.1f s; its work was stopped", route, spent)
        elif status >= 500:
            log.warning(
                "%s: %d %s after %.1f s (cost %d)",
                route,
                status,
                answer.get("code", ""),
                spent,
                work.cost,
            )

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
            if empty_ok and not body:  # no body at all; whitespace is an invalid JSON body
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


class _Replay:
    """The request's receive for the API: the body read already, then the disconnect.

    :meth:`watch` reads the server's receive meanwhile: when the client goes away before the
    answer, the work is stopped and the API's next receive says so.
    """

    def __init__(self, body: bytes, receive: Receive, work: Work) -> None:
        self.body, self.receive, self.work = body, receive, work
        self.sent = False
        self.gone = anyio.Event()

    async def __call__(self) -> Message:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def watch(self, answer: dict[str, Any]) -> None:
        """Wait for the client to go away (or the server to finish the response)."""
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if "status" not in answer:
            self.work.stop("client_gone")
        self.gone.set()


def _error_code(body: bytes) -> str:
    """Return the ``error`` code of a JSON error body, or '' (for the log line)."""
    try:
        code = json.loads(body).get("error", "")
    except (ValueError, AttributeError):
        return ""
    return code if isinstance(code, str) and code.isidentifier() else ""


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
