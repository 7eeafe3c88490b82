"""What a platform's refusal means for the agent: a clear tool error, with when to retry.

Each platform says "slow down" and "this token is no good" in its own way: X and LinkedIn
answer ``429`` (X with the reset time in ``x-rate-limit-reset``, LinkedIn with ``Retry-After``
where it gives one); Meta's Graph API answers ``400``/``403`` with an error code (4, 17, 32, 613,
80001…) and the minutes until access returns in its usage headers, and code 190 for a token.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    import httpx

__all__ = ["PostProblem", "Refused", "meta_refusal", "refusal"]

# Graph API error codes that mean "too many calls" (application, user, page, custom limits).
_META_THROTTLED = frozenset({4, 17, 32, 613, 80001, 80002, 80004, 80005, 80006, 80008, 80014})
_META_TOKEN = frozenset({102, 190})


class PostProblem(Exception):
    """Something the agent can fix before posting (a missing image, one too large)."""


@dataclass
class Refused(Exception):
    """The platform refused a request.

    Attributes:
        platform: The platform's name, for the message.
        status: The HTTP status (0: no refused request, the platform's answer said it).
        detail: What the platform said.
        retry_at: When the platform accepts requests again (rate limits), if it said.
        token: The account's token was refused: the person must connect it again.
        throttled: A rate limit (with or without a time to retry).
    """

    platform: str
    status: int
    detail: str
    retry_at: float | None = None
    token: bool = False
    throttled: bool = False

    def outcome(self, *, now: float | None = None) -> ToolOutcome:
        """The failed call, as the agent hears it."""
        if self.token:
            return ToolOutcome(ok=False, error=(
                f"{self.platform} refused the account's access ({self.status}: {self.detail}); "
                "nothing was posted. The person must connect the account again in their "
                "profile; do not retry until they have."
            ))  # fmt: skip
        if self.retry_at is not None:
            wait = max(0, math.ceil(self.retry_at - (time.time() if now is None else now)))
            when = datetime.fromtimestamp(self.retry_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            return ToolOutcome(ok=False, error=(
                f"{self.platform} is limiting requests ({self.status}: {self.detail}); nothing "
                f"was posted. Try again after {when} (in {wait} s)."
            ))  # fmt: skip
        if self.throttled:
            return ToolOutcome(ok=False, error=(
                f"{self.platform} is limiting requests ({self.status}: {self.detail}); nothing was "
                "posted. Try again later."
            ))  # fmt: skip
        status = f" ({self.status})" if self.status else ""
        return ToolOutcome(
            ok=False, error=f"{self.platform} refused the post{status}: {self.detail}"
        )


def _body(response: httpx.Response) -> Any:  # noqa: ANN401 - whatever JSON came
    try:
        return response.json()
    except ValueError:
        return None


def _text(value: object, fallback: str) -> str:
    text = str(value).strip() if value else ""
    return (text or fallback)[:500]


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value in seconds (the HTTP-date form included)."""
    if not value:
        return None
    try:
        return time.time() + max(0.0, float(value))
    except ValueError:
        try:
            return parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None


def refusal(platform: str, response: httpx.Response) -> Refused:
    """X's or LinkedIn's refusal of a request (any status outside 2xx)."""
    body = _body(response)
    detail = response.reason_phrase or "refused"
    if isinstance(body, dict):
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        detail = _text(
            body.get("detail") or body.get("message") or (first or {}).get("message")
            or body.get("error_description") or body.get("title"),
            detail,
        )  # fmt: skip
    retry_at = None
    if response.status_code == 429:
        reset = response.headers.get("x-rate-limit-reset")
        retry_at = float(reset) if reset and reset.isdigit() else None
        retry_at = retry_at or _seconds(response.headers.get("retry-after"))
    return Refused(platform, response.status_code, detail, retry_at,
                   token=response.status_code == 401,
                   throttled=response.status_code == 429)  # fmt: skip


def meta_refusal(platform: str, response: httpx.Response) -> Refused:
    """The Graph API's refusal: its error object, and for rate limits the time to wait from
    its usage headers."""
    body = _body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return refusal(platform, response)
    code = error.get("code")
    detail = _text(error.get("error_user_msg") or error.get("message"), "refused")
    throttled = code in _META_THROTTLED or response.status_code == 429
    minutes = _regain_minutes(response.headers) if throttled else None
    retry_at = None if minutes is None else time.time() + 60 * minutes
    return Refused(platform, response.status_code, detail, retry_at,
                   token=code in _META_TOKEN or response.status_code == 401,
                   throttled=throttled)  # fmt: skip


def _regain_minutes(headers: httpx.Headers) -> float | None:
    """The longest ``estimated_time_to_regain_access`` (minutes) in Meta's usage headers."""
    found: list[float] = []
    for name in ("x-business-use-case-usage", "x-ad-account-usage", "x-app-usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        entries = [usage] if isinstance(usage, dict) and "call_count" in usage else [
            item for value in (usage.values() if isinstance(usage, dict) else [])
            for item in (value if isinstance(value, list) else [value])
        ]  # fmt: skip
        for entry in entries:
            if isinstance(entry, dict):
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, (int, float)):
                    found.append(float(minutes))
    return max(found) if found else None
