"""What the gateway asks of each platform: who a token belongs to, a code exchanged for
tokens (OAuth 2 with PKCE), and a token refreshed before it expires.

Tokens travel only in headers (``Authorization: Bearer``) or in the token endpoint's form;
nothing here logs a request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from troika_shared.social import PLATFORMS

if TYPE_CHECKING:
    from troika_gateway.social.settings import SocialSettings

__all__ = ["Identity", "PlatformRefused", "Tokens", "endpoints", "exchange", "identify",
           "oauth_client", "refresh"]  # fmt: skip

_TIMEOUT_S = 15


class PlatformRefused(Exception):
    """The platform refused a token or a code (the message says what it said)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The account a token belongs to."""

    account_id: str
    name: str
    username: str = ""


@dataclass(frozen=True, slots=True)
class Tokens:
    """A platform's answer with tokens; ``expires_at`` in seconds since the epoch."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None

    @classmethod
    def from_answer(cls, body: dict[str, Any], *, kept_refresh: str | None = None) -> Tokens:
        expires_in = body.get("expires_in")
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token") or kept_refresh or "") or None,
            expires_at=time.time() + float(expires_in) if expires_in else None,
        )


def endpoints(settings: SocialSettings, platform: str) -> dict[str, str]:
    """The platform's API address and version, as the executor needs them for a post."""
    match platform:
        case "twitter":
            return {"api_url": settings.twitter_api_url, "api_version": "2"}
        case "instagram":
            return {"api_url": settings.instagram_api_url,
                    "api_version": settings.instagram_api_version}  # fmt: skip
        case "facebook":
            return {"api_url": settings.facebook_api_url,
                    "api_version": settings.facebook_api_version}  # fmt: skip
        case "linkedin":
            return {"api_url": settings.linkedin_api_url,
                    "api_version": settings.linkedin_api_version}  # fmt: skip
    raise KeyError(platform)


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The operator's OAuth 2 client for one platform."""

    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str | None
    scopes: str
    secret_in_form: bool  # LinkedIn takes the secret in the form; X with HTTP Basic


def oauth_client(settings: SocialSettings, platform: str) -> OAuthClient | None:
    """The platform's sign-in, where the operator has set it up (X and LinkedIn offer OAuth 2
    with PKCE; Instagram and Facebook take a pasted token)."""
    if platform == "twitter" and settings.twitter_client_id:
        secret = settings.twitter_client_secret
        return OAuthClient(settings.twitter_authorize_url, settings.twitter_token_url,
                           settings.twitter_client_id,
                           secret.get_secret_value() if secret else None,
                           settings.twitter_scopes, secret_in_form=False)  # fmt: skip
    if platform == "linkedin" and settings.linkedin_client_id:
        secret = settings.linkedin_client_secret
        return OAuthClient(settings.linkedin_authorize_url, settings.linkedin_token_url,
                           settings.linkedin_client_id,
                           secret.get_secret_value() if secret else None,
                           settings.linkedin_scopes, secret_in_form=True)  # fmt: skip
    return None


def _refused(platform: str, response: httpx.Response, what: str = "the token") -> PlatformRefused:
    label = PLATFORMS[platform].label
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Meta
            detail = str(error.get("message") or "")
        else:
            detail = str(body.get("error_description") or body.get("detail")
                         or body.get("message") or error or "")  # fmt: skip
    detail = detail.strip()[:300] or response.reason_phrase
    return PlatformRefused(f"{label} refused {what} ({response.status_code}: {detail})")


async def identify(settings: SocialSettings, platform: str, token: str) -> Identity:
    """Who the token belongs to, as the platform says.

    Raises:
        PlatformRefused: The platform did not accept the token.
        httpx.HTTPError: The platform could not be reached.
    """
    where = endpoints(settings, platform)
    api, version = where["api_url"].rstrip("/"), where["api_version"]
    path, params = {
        "twitter": ("/2/users/me", {}),
        "instagram": (f"/{version}/me", {"fields": "user_id,username"}),
        "facebook": (f"/{version}/me", {"fields": "id,name"}),
        "linkedin": ("/v2/userinfo", {}),
    }[platform]
    async with httpx.AsyncClient(timeout=_TIMEOUT_S) as http:
        response = await http.get(
            api + path, params=params, headers={"Authorization": f"Bearer {token}"}
        )
    if not response.is_success:
        raise _refused(platform, response)
    body = response.json()
    match platform:
        case "twitter":
            data = body["data"]
            return Identity(str(data["id"]), str(data.get("name") or data["username"]),
                            str(data["username"]))  # fmt: skip
        case "instagram":
            user = str(body.get("user_id") or body["id"])
            return Identity(user, str(body.get("username") or user), str(body.get("username", "")))
        case "facebook":
            return Identity(str(body["id"]), str(body.get("name") or body["id"]))
    return Identity(str(body["sub"]), str(body.get("name") or body["sub"]))


async def _token_request(
    platform: str, client: OAuthClient, form: dict[str, str], what: str
) -> dict[str, Any]:
    form = {**form, "client_id": client.client_id}
    auth = None
    if client.client_secret and client.secret_in_form:
        form["client_secret"] = client.client_secret
    elif client.client_secret:
        auth = httpx.BasicAuth(client.client_id, client.client_secret)
    async with httpx.AsyncClient(timeout=_TIMEOUT_S, auth=auth) as http:
        response = await http.post(client.token_url, data=form)
    if not response.is_success:
        raise _refused(platform, response, what)
    body: dict[str, Any] = response.json()
    return body


async def exchange(
    platform: str, client: OAuthClient, *, code: str, verifier: str, redirect_uri: str
) -> Tokens:
    """The tokens for an authorization code (PKCE: with the verifier of its challenge).

    Raises:
        PlatformRefused: The platform refused the code.
        httpx.HTTPError: The platform could not be reached.
    """
    body = await _token_request(platform, client, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }, "the sign-in")  # fmt: skip
    return Tokens.from_answer(body)


async def refresh(settings: SocialSettings, platform: str, secrets: dict[str, Any]) -> Tokens:
    """New tokens for an account whose token is about to expire.

    Raises:
        PlatformRefused: The platform refused (the person must connect the account again),
            or it offers no refresh for this account.
        httpx.HTTPError: The platform could not be reached.
    """
    if not secrets.get("access_token"):
        raise PlatformRefused("the stored token no longer opens (the secret key changed)")
    refresh_token = secrets.get("refresh_token")
    if platform == "instagram":
        where = endpoints(settings, platform)
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as http:
            response = await http.get(
                where["api_url"].rstrip("/") + "/refresh_access_token",
                params={"grant_type": "ig_refresh_token"},
                headers={"Authorization": f"Bearer {secrets['access_token']}"},
            )
        if not response.is_success:
            raise _refused(platform, response, "to renew the token")
        return Tokens.from_answer(response.json())
    client = oauth_client(settings, platform)
    if not refresh_token or client is None:
        raise PlatformRefused(f"{PLATFORMS[platform].label} gives no way to renew this token here")
    body = await _token_request(platform, client, {
        "grant_type": "refresh_token", "refresh_token": str(refresh_token),
    }, "to renew the token")  # fmt: skip
    return Tokens.from_answer(body, kept_refresh=str(refresh_token))
