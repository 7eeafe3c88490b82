"""Every error response, as RFC 9457 problem details (``application/problem+json``).

This is the one place where errors become HTTP status codes.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import structlog
from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_502_BAD_GATEWAY,
)

from troika_gateway.errors import (
    Conflict,
    GatewayError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Upstream,
)
from troika_shared import words

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar import Request
    from litestar.types import ExceptionHandlersMap

__all__ = ["PROBLEM_JSON", "exception_handlers", "in_words", "problem"]

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("troika.gateway")

_STATUS: dict[type[GatewayError], int] = {
    NotFound: HTTP_404_NOT_FOUND,
    Conflict: HTTP_409_CONFLICT,
    InvalidInput: HTTP_422_UNPROCESSABLE_ENTITY,
    Unauthorized: HTTP_401_UNAUTHORIZED,
    RateLimited: HTTP_429_TOO_MANY_REQUESTS,
    PayloadTooLarge: HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    Upstream: HTTP_502_BAD_GATEWAY,
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> Response[dict[str, Any]]:
    """A problem-details response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[Any]:
    status = next(code for kind, code in _STATUS.items() if isinstance(exc, kind))
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="troika"'
    if isinstance(exc, InvalidInput) and exc.errors:
        extra["errors"] = exc.errors
    return problem(request, status, exc.detail, title=exc.title, headers=headers, **extra)


_AT_PATH = re.compile(r"- at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")

_SIZE = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}


def _wrong_kind(expected: list[str], given: str) -> str:
    return f"must be {' or '.join(map(words.kind, expected))}, not {words.kind(given)}"


def _bound(kind: str, op: str, limit: str) -> str:
    limit = limit.removesuffix(".0")
    if kind == "str":
        unit = "character" if limit == "1" else "characters"
        return f"must be {_SIZE[op]} {limit} {unit} long"
    if kind in {"array", "object"}:
        unit = "item" if limit == "1" else "items"
        return f"must hold {_SIZE[op]} {limit} {unit}"
    return f"must be {_SIZE[op]} {limit}"


# msgspec's messages, in the words a person filling a form would use. The first that matches
# wins; a message none matches is passed on as it is.
_IN_WORDS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^Object missing required field"), "is required"),
    (re.compile(r"^Object contains unknown field"), "is not a field this takes"),
    (
        re.compile(r"^Expected `(\w+)` of length (>=|<=|>|<) (\d+)$"),
        lambda m: _bound(m[1], m[2], m[3]),
    ),
    (re.compile(r"^Expected `(\w+)` (>=|<=|>|<) ([-\d.e+]+)$"), lambda m: _bound(m[1], m[2], m[3])),
    (re.compile(r"^Expected `str` matching regex"), "is not in the expected form"),
    (
        re.compile(r"^Expected `([^`]+)`, got `(\w+)`$"),
        lambda m: _wrong_kind(m[1].split(" | "), m[2]),
    ),
    (re.compile(r"^Invalid enum value"), "is not one of the accepted values"),
    (
        re.compile(r"^Invalid RFC3339 encoded (datetime|date|time)$"),
        lambda m: (
            f"must be a {m[1].replace('datetime', 'date and time')} like "
            + {"datetime": "2026-01-31T09:00:00Z", "date": "2026-01-31", "time": "09:00:00"}[m[1]]
        ),
    ),
    (re.compile(r"^Invalid UUID"), "is not a valid id"),
    (re.compile(r"^Invalid base64"), "is not valid base64"),
)


def in_words(message: str) -> str:
    """A validation message in plain words ("must be at least 3 characters long")."""
    for pattern, say in _IN_WORDS:
        if found := pattern.search(message):
            return say if isinstance(say, str) else say(found)
    return message


def _field_error(item: dict[str, Any]) -> dict[str, str]:
    """One validation problem, naming the body field at fault rather than "data", in words."""
    message = str(item.get("message", ""))
    field = str(item.get("key") or item.get("source") or "")
    if field == "data":
        path = _AT_PATH.search(message)
        named = _NAMED.search(message)
        parts = [
            p for p in ((path.group(1) if path else ""), (named.group(1) if named else "")) if p
        ]
        field = ".".join(parts) or "body"
        message = _AT_PATH.sub("", message).strip()
    return {"field": field, "message": in_words(message)}


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    # Litestar reports both an unparseable body and a body that fails the schema as a
    # validation error; the first is a bad request, the second unprocessable content.
    items = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field_error(item) for item in items if isinstance(item, dict)]
    malformed = "malformed" in str(exc.detail).lower() or not errors
    status = HTTP_400_BAD_REQUEST if malformed else HTTP_422_UNPROCESSABLE_ENTITY
    detail = str(exc.detail) if malformed else "the request does not match the expected schema"
    if errors:
        return problem(request, status, detail, errors=errors)
    return problem(request, status, detail)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    headers = dict(exc.headers or {})
    return problem(request, exc.status_code, str(exc.detail), headers=headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request.failed", path=request.url.path, exc_info=exc)
    return problem(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "an unexpected error occurred; it has been logged"
    )


def exception_handlers() -> ExceptionHandlersMap:
    """The handlers to give the app."""
    return {
        GatewayError: _gateway_error,
        ValidationException: _validation_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
