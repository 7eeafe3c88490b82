"""The gateway's domain errors. Their HTTP status codes live in one place: ``problems.py``.

::

    TroikaError
    └── GatewayError
        ├── NotFound            the resource does not exist, or is not the caller's
        ├── Conflict            the request contradicts the resource's current state
        ├── InvalidInput        well-formed, but not acceptable (with the fields at fault)
        ├── Unauthorized        no valid credentials
        ├── RateLimited         too many attempts; try again after ``retry_after`` seconds
        ├── PayloadTooLarge     the body or file is over its limit
        └── Upstream            a service the request needs (a social platform) did not answer
"""

from __future__ import annotations

from troika_shared.errors import TroikaError

__all__ = [
    "BudgetUsedUp",
    "Conflict",
    "GatewayError",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Upstream",
]


class GatewayError(TroikaError):
    """Root of the errors the API turns into problem responses."""

    title = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(GatewayError):
    """The resource does not exist or belongs to someone else (the two are indistinguishable).

    Attributes:
        resource: What was looked for (``task``, ``file``…).
    """

    title = "Not found"

    def __init__(self, resource: str) -> None:
        super().__init__(f"no such {resource}")
        self.resource = resource


class Conflict(GatewayError):
    """The request contradicts the resource's current state."""

    title = "Conflict"


class BudgetUsedUp(Conflict):
    """The person's own money limit is reached: no new task starts until they raise it."""

    title = "Budget used up"


class InvalidInput(GatewayError):
    """The request is well-formed but not acceptable.

    Attributes:
        errors: ``{"field": ..., "message": ...}`` for each problem.
    """

    title = "Invalid input"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class Unauthorized(GatewayError):
    """No valid credentials came with the request."""

    title = "Not authenticated"


class RateLimited(GatewayError):
    """Too many attempts.

    Attributes:
        retry_after: Seconds until the next attempt is accepted.
    """

    title = "Too many attempts"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PayloadTooLarge(GatewayError):
    """The request body or an uploaded file is over its limit.

    Attributes:
        limit: The limit, in bytes.
    """

    title = "Too large"

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is larger than the limit of {limit} bytes")
        self.limit = limit


class Upstream(GatewayError):
    """A service outside Troika that the request needs could not be reached or failed."""

    title = "Bad gateway"
