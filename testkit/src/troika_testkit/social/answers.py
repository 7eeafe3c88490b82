"""What the server answers: an :class:`Answer`, the :class:`Refused` that ends a request's
handling with one, and each platform's own error answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from troika_testkit.social.pieces import alnum

__all__ = [
    "Answer",
    "Refused",
    "json_answer",
    "li_error",
    "meta_error",
    "meta_unsupported",
    "not_found",
    "oauth_error",
    "unauthorized",
    "x_forbidden",
    "x_invalid",
]


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Refused(Exception):
    """Ends a request's handling with the platform's refusal."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def json_answer(status: int, document: object, headers: dict[str, str] | None = None) -> Answer:
    body = json.dumps(document).encode()
    return Answer(status, body, {"Content-Type": "application/json", **(headers or {})})


# --- the platforms' error answers ------------------------------------------------------------


def _x_unauthorized() -> Answer:
    return json_answer(
        401,
        {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
    )


def x_invalid(message: str) -> Answer:
    return json_answer(
        400,
        {
            "errors": [{"message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
    )


def x_forbidden(detail: str) -> Answer:
    document = {"detail": detail, "type": "about:blank", "title": "Forbidden", "status": 403}
    return json_answer(403, document)


def oauth_error(error: str, description: str) -> Answer:
    return json_answer(400, {"error": error, "error_description": description})


def meta_error(
    status: int, code: int, message: str, subcode: int | None = None, **extra: object
) -> Answer:
    error: dict[str, object] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    error["fbtrace_id"] = alnum(11)
    return json_answer(status, {"error": error})


def meta_unsupported(verb: str, ident: str) -> Answer:
    return meta_error(
        400,
        100,
        f"Unsupported {verb} request. Object with ID '{ident}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation.",
        33,
    )


def li_error(status: int, code: str, message: str, **extra: object) -> Answer:
    return json_answer(status, {"status": status, **extra, "code": code, "message": message})


def unauthorized(platform: str, why: str) -> Answer:
    """The platform's answer to a missing, unknown or expired access token."""
    if platform == "x":
        return _x_unauthorized()
    if platform == "linkedin":
        return {
            "missing": li_error(
                401, "EMPTY_ACCESS_TOKEN", "Empty oauth2 access token", serviceErrorCode=65604
            ),
            "unknown": li_error(
                401,
                "REVOKED_ACCESS_TOKEN",
                "The token used in the request has been revoked by the user",
                serviceErrorCode=65601,
            ),
            "expired": li_error(
                401,
                "EXPIRED_ACCESS_TOKEN",
                "The token used in the request has expired",
                serviceErrorCode=65600,
            ),
        }[why]
    if why == "expired":
        return meta_error(400, 190, "Error validating access token: This token has expired", 463)
    return meta_error(400, 190, "Invalid OAuth access token - Cannot parse access token")


def not_found(platform: str, path: str) -> Answer:
    if platform == "x":
        return json_answer(
            404,
            {
                "title": "Not Found Error",
                "detail": f"No endpoint at {path}",
                "type": "https://api.twitter.com/2/problems/resource-not-found",
                "status": 404,
            },
        )
    if platform == "linkedin":
        return li_error(404, "NOT_FOUND", "No virtual resource found")
    return meta_error(400, 2500, f"Unknown path components: {path}")
