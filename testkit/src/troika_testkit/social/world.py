"""Everything the platforms know: the requests, posts and accounts, the tokens and what each
platform keeps between requests, the canned failures, and OAuth 2.0 with PKCE (X and
LinkedIn)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from troika_testkit.social.answers import (
    Answer,
    Refused,
    json_answer,
    li_error,
    meta_error,
    oauth_error,
    unauthorized,
)
from troika_testkit.social.pieces import alnum, bearer, digits, new_token
from troika_testkit.social.records import Account, Post, Recorded

__all__ = [
    "LINKEDIN_REFRESH_LIFETIME_S",
    "LINKEDIN_SCOPE",
    "LINKEDIN_TOKEN_LIFETIME_S",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "X_SCOPE",
    "Canned",
    "Container",
    "Image",
    "Route",
    "Upload",
    "World",
]

OAUTH_CLIENT_ID = "troika-test-client"
OAUTH_CLIENT_SECRET = "troika-test-secret"  # noqa: S105 - the test client's secret

X_SCOPE = "tweet.read tweet.write users.read media.write offline.access"
LINKEDIN_SCOPE = "openid profile w_member_social"
LINKEDIN_TOKEN_LIFETIME_S = 5_184_000
LINKEDIN_REFRESH_LIFETIME_S = 31_536_000


# --- the server's own records ----------------------------------------------------------------


@dataclass
class Canned:
    platform: str
    pattern: re.Pattern[str]
    answer: Answer | None  # None: the platform's rate-limit answer
    reset_in_s: int = 0


@dataclass
class _Grant:
    account: Account
    challenge: str
    redirect_uri: str
    client_id: str


@dataclass
class Upload:
    owner: str
    data: bytes


@dataclass
class Container:
    owner: str
    kind: str  # "image", "item" (of a carousel) or "carousel"
    images: list[bytes]
    children: list[str]
    caption: str
    form: dict[str, str]
    polls: int = 0
    published: bool = False

    @property
    def status(self) -> str:
        """``PUBLISHED``; ``FINISHED`` once a poll has answered so; else ``IN_PROGRESS``."""
        if self.published:
            return "PUBLISHED"
        return "FINISHED" if self.polls > 1 else "IN_PROGRESS"

    def poll(self) -> str:
        """The status a poll answers: ``IN_PROGRESS`` the first time, ``FINISHED`` after."""
        self.polls += 1
        return "IN_PROGRESS" if self.polls == 1 and not self.published else self.status


@dataclass
class Image:
    owner: str  # the URN it was initialized for
    uploader: str  # the member who initialized it
    data: bytes | None = None


# --- small pieces ------------------------------------------------------------------------------


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _basic(request: Recorded) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except ValueError:
        return None
    return user, password


# --- the platforms -----------------------------------------------------------------------------


class World:
    """Everything the platforms know, and what they answer; one lock guards it all."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.url = ""
        self.requests: list[Recorded] = []
        self.posts: list[Post] = []
        self.accounts: list[Account] = []
        self.lifetimes: dict[int, int | None] = {}  # id(account) -> token lifetime (s)
        self.canned: list[Canned] = []
        self.codes: dict[str, _Grant] = {}
        self.x_tweets: set[str] = set()
        self.x_media: dict[str, Upload] = {}
        self.ig_containers: dict[str, Container] = {}
        self.ig_media: dict[str, Post] = {}
        self.fb_photos: dict[str, Upload] = {}  # unpublished, waiting to be attached
        self.li_images: dict[str, Image] = {}

    # --- plumbing -------------------------------------------------------------------------

    def holder(self, request: Recorded) -> Account | None:
        """The account whose access token the request carries in its header, if any."""
        token = bearer(request)
        with self.lock:
            return next(
                (
                    a
                    for a in self.accounts
                    if token and a.platform == request.platform and a.access_token == token
                ),
                None,
            )

    def account(self, request: Recorded) -> Account:
        """The account the request's bearer token belongs to; refused with the platform's
        answer when the token is missing, unknown or expired."""
        found = self.holder(request)
        if found is None:
            why = "missing" if bearer(request) is None else "unknown"
            raise Refused(unauthorized(request.platform, why))
        if found.expires_at is not None and found.expires_at <= time.time():
            raise Refused(unauthorized(request.platform, "expired"))
        return found

    def add(
        self,
        platform: str,
        *,
        ident: str,
        name: str,
        username: str | None,
        lifetime: int | None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        organizations: tuple[str, ...] = (),
    ) -> Account:
        """A new account with the given tokens, or random ones."""
        refreshes = platform in ("x", "linkedin")
        account = Account(
            platform=platform,
            id=ident,
            name=name,
            username=username,
            access_token=access_token or new_token(platform),
            refresh_token=(refresh_token or new_token(platform)) if refreshes else None,
            expires_at=None if lifetime is None else time.time() + lifetime,
            organizations=organizations,
        )
        with self.lock:
            self.accounts.append(account)
            self.lifetimes[id(account)] = lifetime
        return account

    def renew(self, account: Account) -> None:
        """Gives the account new tokens; the old ones stop working."""
        with self.lock:
            account.access_token = new_token(account.platform)
            if account.refresh_token is not None:
                account.refresh_token = new_token(account.platform)
            lifetime = self.lifetimes[id(account)]
            account.expires_at = None if lifetime is None else time.time() + lifetime

    def first(self, platform: str) -> Account | None:
        with self.lock:
            return next((a for a in self.accounts if a.platform == platform), None)

    def rate_limited(self, request: Recorded, reset_in_s: int) -> Answer:
        """The platform's documented answer when a rate limit is reached."""
        if request.platform == "x":
            headers = {
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(int(time.time()) + reset_in_s),
            }
            document = {
                "title": "Too Many Requests",
                "detail": "Too Many Requests",
                "type": "about:blank",
                "status": 429,
            }
            return json_answer(429, document, headers)
        if request.platform == "linkedin":
            message = (
                "Resource level throttle APPLICATION DAY limit for calls to this resource is "
                "reached."
            )
            answer = li_error(429, "TOO_MANY_REQUESTS", message)
            answer.headers["Retry-After"] = str(reset_in_s)
            return answer
        account = self.holder(request) or self.first(request.platform)
        owner = account.id if account is not None else "0"
        kind, code, message = (
            ("instagram", 4, "(#4) Application request limit reached")
            if request.platform == "instagram"
            else ("pages", 32, "(#32) Page request limit reached")
        )
        usage = {
            owner: [
                {
                    "type": kind,
                    "call_count": 100,
                    "total_cputime": 25,
                    "total_time": 25,
                    "estimated_time_to_regain_access": math.ceil(reset_in_s / 60),
                }
            ]
        }
        answer = meta_error(400, code, message, is_transient=True)
        answer.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return answer

    # --- OAuth 2.0 with PKCE (X and LinkedIn) ---------------------------------------------

    def authorize(self, request: Recorded, _: re.Match[str]) -> Answer:
        """No consent page: the first account of the platform agrees at once."""
        query = {name: values[0] for name, values in request.query.items()}
        required = ["response_type", "client_id", "redirect_uri", "scope", "code_challenge"]
        if request.platform == "x":
            required.append("state")
        for name in required:
            if not query.get(name):
                raise Refused(oauth_error("invalid_request", f"Missing parameter [{name}]"))
        if query["response_type"] != "code":
            raise Refused(oauth_error("unsupported_response_type", "response_type must be code"))
        if query["client_id"] != OAUTH_CLIENT_ID:
            raise Refused(oauth_error("invalid_request", "Unknown client_id"))
        if query.get("code_challenge_method") != "S256":
            raise Refused(oauth_error("invalid_request", "code_challenge_method must be S256"))
        account = self.first(request.platform)
        if account is None:
            x = request.platform == "x"
            account = self.add(
                request.platform,
                ident=digits(19) if x else alnum(10),
                name="Ada" if x else "Ada Lovelace",
                username="ada_writes" if x else None,
                lifetime=7200 if x else LINKEDIN_TOKEN_LIFETIME_S,
                organizations=() if x else ("1234567",),
            )
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = _Grant(
                account, query["code_challenge"], query["redirect_uri"], query["client_id"]
            )
        redirect = query["redirect_uri"]
        answer = {"state": query["state"], "code": code} if "state" in query else {"code": code}
        location = f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(answer)}"
        return Answer(302, b"", {"Location": location})

    def _client(self, request: Recorded, form: dict[str, str]) -> str | None:
        """The client the token request authenticates as, or ``None``: X takes HTTP Basic or a
        public client's ``client_id``; LinkedIn takes ``client_id`` and ``client_secret``."""
        basic = _basic(request)
        if request.platform == "x" and basic is not None:
            return basic[0] if basic == (OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET) else None
        if form.get("client_id") != OAUTH_CLIENT_ID:
            return None
        secret = form.get("client_secret")
        if request.platform == "linkedin" and secret is None:
            return None
        return OAUTH_CLIENT_ID if secret in (None, OAUTH_CLIENT_SECRET) else None

    def token(self, request: Recorded, _: re.Match[str]) -> Answer:
        """Exchanges a code (with its PKCE verifier) or a refresh token for new tokens."""
        form = request.form()
        client = self._client(request, form)
        if client is None:
            raise Refused(oauth_error("invalid_request", "Client authentication failed"))
        grant_type = form.get("grant_type")
        with self.lock:
            if grant_type == "authorization_code":
                account = self._redeem(form, client)
            elif grant_type == "refresh_token":
                account = self._refreshing(request.platform, form.get("refresh_token"))
            else:
                raise Refused(oauth_error("invalid_request", "Unsupported grant_type"))
            self.renew(account)
            if request.platform == "x":
                document: dict[str, object] = {
                    "token_type": "bearer",
                    "expires_in": self.lifetimes[id(account)],
                    "access_token": account.access_token,
                    "scope": X_SCOPE,
                    "refresh_token": account.refresh_token,
                }
            else:
                document = {
                    "access_token": account.access_token,
                    "expires_in": LINKEDIN_TOKEN_LIFETIME_S,
                    "refresh_token": account.refresh_token,
                    "refresh_token_expires_in": LINKEDIN_REFRESH_LIFETIME_S,
                    "scope": LINKEDIN_SCOPE,
                }
        return json_answer(200, document)

    def _refreshing(self, platform: str, refresh_token: str | None) -> Account:
        """The account a refresh token belongs to now (a replaced one belongs to none)."""
        found = next(
            (
                a
                for a in self.accounts
                if refresh_token and a.platform == platform and a.refresh_token == refresh_token
            ),
            None,
        )
        if found is None:
            raise Refused(oauth_error("invalid_request", "Value passed for the token was invalid."))
        return found

    def _redeem(self, form: dict[str, str], client: str) -> Account:
        """The account an authorization code was given for; the code works once."""
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant.client_id != client:
            raise Refused(
                oauth_error(
                    "invalid_request", "Value passed for the authorization code was invalid."
                )
            )
        if form.get("redirect_uri") != grant.redirect_uri:
            raise Refused(oauth_error("invalid_request", "redirect_uri does not match"))
        verifier = form.get("code_verifier")
        if not verifier or _challenge(verifier) != grant.challenge:
            raise Refused(oauth_error("invalid_grant", "code_verifier does not match"))
        return grant.account


Route = tuple[str, re.Pattern[str], Callable[[World, Recorded, re.Match[str]], Answer]]
"""One of a platform's endpoints: the method, the path's pattern and what answers it."""
