"""What the gateway says when it refuses: RFC 9457 problem details as one exception."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["ApiError", "field_errors", "problem_of"]


class ApiError(Exception):
    """The gateway refused a request, or could not be reached.

    Attributes:
        status: The HTTP status (503 when the gateway did not answer).
        detail: Why, in the gateway's words.
        errors: Per-field problems (``{"field": …, "message": …}``) where the input was wrong.
    """

    def __init__(
        self, status: int, detail: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []

    @property
    def message(self) -> str:
        """One line for the person: the detail, with the fields that were wrong."""
        fields = field_errors(self.errors)
        if not fields:
            return self.detail
        return self.detail + ": " + "; ".join(f"{name} {text}" for name, text in fields.items())


def field_errors(errors: list[dict[str, Any]]) -> dict[str, str]:
    """``{"field": "message"}`` from a problem document's ``errors`` (``$.`` prefixes dropped)."""
    found: dict[str, str] = {}
    for error in errors:
        name = str(error.get("field") or error.get("key") or "").removeprefix("$.")
        found.setdefault(name or "input", str(error.get("message") or "is not valid"))
    return found


def problem_of(response: httpx.Response) -> ApiError:
    """The refusal a response carries, read from its problem document where it has one."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or body.get("title") or response.text or response.reason_phrase)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    return ApiError(response.status_code, detail, errors)
