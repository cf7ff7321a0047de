"""The API's errors, shared by the engine, the service's guard and the Python clients.

Kept free of the engine, DuckDB and LightGBM (pydantic only), so that the HTTP client, which
raises the same errors as the service answers, imports in a blink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from lifecycle.features.validate import CONTROL_CHARACTER_MESSAGE


class RequestError(Exception):
    """A client's mistake: an HTTP status, a code, a sentence and the fields at fault.

    Examples
    --------
    >>> error = RequestError(404, "unknown_customer", "no customer C1", [("customer_id", "?")])
    >>> error.body()["fields"]
    [{'field': 'customer_id', 'message': '?'}]
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)

    def body(self) -> dict[str, Any]:
        """Return the JSON error body (see :class:`lifecycle.serving.schemas.ErrorResponse`)."""
        return {
            "error": self.code,
            "message": self.message,
            "fields": [{"field": f, "message": m} for f, m in self.fields],
        }


class ServiceUnavailable(RuntimeError):
    """The service answered 503: its models are still loading, or its start-up failed.

    ``retry_after`` is the service's hint in seconds (None when it gave none).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnexpectedResponse(RuntimeError):
    """An answer that is not the API's: not a JSON object, or an error without its JSON body."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def field_path(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into a path such as ``items[2].events[0].event_ts``.

    Examples
    --------
    >>> field_path(("items", 2, "events", 0, "event_ts"))
    'items[2].events[0].event_ts'
    """
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_fields(exc: ValidationError) -> list[dict[str, str]]:
    """One ``{field, message}`` per problem, without echoing the input back."""
    problems = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":  # the only pattern: ids (schemas.ID_PATTERN)
            message = f"{CONTROL_CHARACTER_MESSAGE} {err['loc'][-1]}"
        problems.append({"field": field_path(tuple(err["loc"])), "message": message})
    return problems
