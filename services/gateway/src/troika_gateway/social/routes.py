"""``/social``: the caller's connected accounts for the posting tools.

An account is connected by pasting a token (the platform is asked whose it is) or through the
platform's own sign-in (OAuth 2 with PKCE, where the operator has an app with that platform):
``POST /social/oauth`` gives the address to send the person to, and the platform sends them
back to the web app, which hands the code to ``POST /social/oauth/complete``. Tokens are never
shown again.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse

# Litestar reads handler annotations at run time: their types are real imports.
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from msgspec import Meta, Struct
from sqlalchemy import delete as delete_rows
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.db.models import SocialAccount
from troika_gateway.errors import Conflict, InvalidInput, NotFound, Upstream
from troika_gateway.openapi import BEARER
from troika_gateway.social.accounts import connect, open_media_link, shown_name
from troika_gateway.social.platforms import PlatformRefused, Tokens, exchange, oauth_client
from troika_gateway.storage import content_type_of, file_name, stream_file
from troika_shared.social import PLATFORMS
from troika_shared.vault import VaultError, open_secret, seal_secret

if TYPE_CHECKING:
    from troika_gateway.settings import GatewaySettings

__all__ = ["SocialController", "social_media"]

PlatformKey = Literal["twitter", "instagram", "linkedin", "facebook"]
_STATE_TTL_S = 600
_STATE_CONTEXT = "social-oauth"


Token = Annotated[str, Meta(min_length=8, max_length=4096, pattern=r"^[!-~]+$")]  # visible ASCII


class PlatformView(Struct, kw_only=True):
    """A platform people can connect, and how."""

    platform: str
    label: str
    sign_in: bool  # through the platform's own sign-in (else: paste a token)
    max_text: int
    max_images: int


class AccountView(Struct, kw_only=True):
    """A connected account as the API shows it: who it is, never its tokens.

    Attributes:
        shown: How posts name it (``@handle`` or its name).
        expires_at: When its token expires (``None``: it does not, or the platform did not say).
        renewable: Its token is renewed before it expires.
        problem: What went wrong renewing it (the person connects it again).
    """

    id: str
    platform: str
    label: str
    account_id: str
    name: str
    username: str
    shown: str
    expires_at: datetime | None
    renewable: bool
    problem: str
    connected_at: datetime


class PastedToken(Struct, forbid_unknown_fields=True, kw_only=True):
    """A token the person got from the platform (its developer tools, a Page's settings).

    Attributes:
        refresh_token: With it (and the operator's app on that platform), the token is renewed.
        expires_in: Seconds the token works for, as the platform said when it gave it.
    """

    platform: PlatformKey
    access_token: Token
    refresh_token: Token | None = None
    expires_in: Annotated[int, Meta(ge=1, le=10 * 365 * 86400)] | None = None


class SignInRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """Starts connecting through the platform's sign-in; ``redirect_uri`` is where the
    platform sends the person back (the web app's page, registered with the platform)."""

    platform: PlatformKey
    redirect_uri: Annotated[str, Meta(max_length=2000, pattern=r"^https?://[^\s#]+$")]


class SignInStarted(Struct, kw_only=True):
    """Where to send the person, and the state the platform sends back with the code."""

    authorize_url: str
    state: str


class SignInDone(Struct, forbid_unknown_fields=True, kw_only=True):
    """What the platform sent the person back with."""

    state: Annotated[str, Meta(min_length=1, max_length=4096)]
    code: Annotated[str, Meta(min_length=1, max_length=4096)]


def _view(row: SocialAccount) -> AccountView:
    return AccountView(
        id=row.id, platform=row.platform, label=PLATFORMS[row.platform].label,
        account_id=row.account_id, name=row.name, username=row.username, shown=shown_name(row),
        expires_at=row.expires_at, renewable=row.renewable, problem=row.problem,
        connected_at=row.created_at,
    )  # fmt: skip


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SocialController(Controller):
    """The caller's social accounts; another person's are 404."""

    path = "/social"
    tags = ["social accounts"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER

    @get("/platforms")
    async def platforms(self, state: State) -> list[PlatformView]:
        """The platforms accounts can be connected on, and whether through their sign-in."""
        settings: GatewaySettings = state.settings
        return [
            PlatformView(
                platform=p.key,
                label=p.label,
                max_text=p.max_text,
                max_images=p.max_images,
                sign_in=oauth_client(settings, p.key) is not None,
            )
            for p in PLATFORMS.values()
        ]

    @get("/accounts")
    async def list_accounts(
        self, request: Request[Principal, Any, State], db: NamedDependency[AsyncSession]
    ) -> list[AccountView]:
        """The caller's connected accounts, by platform then as connected."""
        rows = await db.scalars(
            select(SocialAccount)
            .where(SocialAccount.user_id == request.user.user_id)
            .order_by(SocialAccount.platform, SocialAccount.created_at)
        )
        return [_view(row) for row in rows]

    @post("/accounts", status_code=201, request_max_body_size=16 * 1024)
    async def paste(
        self,
        data: JSONBody[PastedToken],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> AccountView:
        """Connects the account a pasted token belongs to (the platform is asked whose it is;
        a token it refuses is not stored)."""
        tokens = Tokens(
            access_token=data.access_token,
            refresh_token=data.refresh_token,
            expires_at=time.time() + data.expires_in if data.expires_in else None,
        )
        row = await connect(db, state.settings, request.user.user_id, data.platform, tokens)
        return _view(row)

    @delete("/accounts/{account_id:str}", status_code=204)
    async def remove(
        self,
        account_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
    ) -> None:
        """Forgets an account and its tokens (posts already made stay on the platform)."""
        removed = await db.execute(
            delete_rows(SocialAccount).where(
                SocialAccount.id == account_id, SocialAccount.user_id == request.user.user_id
            )
        )
        await db.commit()
        if not getattr(removed, "rowcount", 0):
            raise NotFound("account")

    @post("/oauth", status_code=200, request_max_body_size=8 * 1024)
    async def start_sign_in(
        self, data: JSONBody[SignInRequest], request: Request[Principal, Any, State], state: State
    ) -> SignInStarted:
        """The platform's sign-in address for the caller, with a PKCE challenge; the verifier
        travels sealed in ``state`` and works for ten minutes."""
        settings: GatewaySettings = state.settings
        client = oauth_client(settings, data.platform)
        if client is None:
            label = PLATFORMS[data.platform].label
            raise Conflict(f"signing in with {label} is not set up on this server: paste a "
                           "token instead (POST /social/accounts)")  # fmt: skip
        verifier = secrets.token_urlsafe(64)
        sealed = seal_secret(settings.sealing_key(), {
            "user": request.user.user_id, "platform": data.platform, "verifier": verifier,
            "redirect_uri": data.redirect_uri, "until": int(time.time()) + _STATE_TTL_S,
        }, _STATE_CONTEXT)  # fmt: skip
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client.client_id,
            "redirect_uri": data.redirect_uri, "scope": client.scopes, "state": sealed,
            "code_challenge": _challenge(verifier), "code_challenge_method": "S256",
        })  # fmt: skip
        joiner = "&" if "?" in client.authorize_url else "?"
        return SignInStarted(authorize_url=f"{client.authorize_url}{joiner}{query}", state=sealed)

    @post("/oauth/complete", status_code=201, request_max_body_size=16 * 1024)
    async def complete_sign_in(
        self,
        data: JSONBody[SignInDone],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> AccountView:
        """Exchanges the code the platform sent back for tokens and connects the account."""
        settings: GatewaySettings = state.settings
        try:
            started = open_secret(settings.sealing_key(), data.state, _STATE_CONTEXT)
        except VaultError:
            started = None
        if (
            started is None
            or started.get("user") != request.user.user_id
            or int(started.get("until", 0)) < time.time()
        ):
            message = "this sign-in is unknown or expired: start connecting the account again"
            raise InvalidInput(message, [{"field": "state", "message": message}])
        platform = str(started["platform"])
        client = oauth_client(settings, platform)
        if client is None:
            raise Conflict(f"signing in with {PLATFORMS[platform].label} is not set up any more")
        try:
            tokens = await exchange(platform, client, code=data.code,
                                    verifier=str(started["verifier"]),
                                    redirect_uri=str(started["redirect_uri"]))  # fmt: skip
        except PlatformRefused as exc:
            raise InvalidInput(str(exc), [{"field": "code", "message": str(exc)}]) from None
        except httpx.HTTPError as exc:
            label = PLATFORMS[platform].label
            raise Upstream(f"{label} could not be reached: {exc}") from None
        row = await connect(db, settings, request.user.user_id, platform, tokens)
        return _view(row)


@get("/social/media/{token:str}", tags=["social accounts"], include_in_schema=False)
async def social_media(token: FromPath[str], state: State) -> Stream:
    """One image of a task's folder, for a platform that fetches a post's images itself (the
    link is signed for that file and works for an hour)."""
    settings: GatewaySettings = state.settings
    found = open_media_link(settings, token)
    if found is None:
        raise NotFound("image")
    task_id, name = found
    try:
        return await stream_file(state.files, task_id, file_name(name),
                                 media_type=content_type_of(name), kind="inline")  # fmt: skip
    except (InvalidInput, FileNotFoundError, ValueError):
        raise NotFound("image") from None
