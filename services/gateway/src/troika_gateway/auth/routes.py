"""The account endpoints: ``/auth/…``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.params import JSONBody, MultipartBody
from litestar.response import Response

from troika_gateway.auth.accounts import Accounts, Client, profile_of
from troika_gateway.auth.middleware import Principal
from troika_gateway.auth.photos import find_photo, remove_photo, save_photo
from troika_gateway.auth.schemas import (
    Login,
    PasswordChange,
    Profile,
    ProfileUpdate,
    Refresh,
    Registration,
    Tokens,
)
from troika_gateway.errors import NotFound
from troika_gateway.openapi import BEARER

__all__ = ["AuthController", "PhotoUpload"]

AuthedRequest = Request[Principal, Any, State]
_JSON_LIMIT = 64 * 1024  # account requests are small


async def _sessions_ended(state: State, user_id: str) -> None:
    """Tells every gateway process that sessions of the user ended (their feeds check theirs);
    without the bus, the feeds notice within their regular check."""
    bus = state.bus
    with contextlib.suppress(Exception):
        await bus.nc.publish(bus.topology.sessions_ended_subject(user_id), b"")


@dataclass
class PhotoUpload:
    """A profile photo (PNG, JPEG, GIF or WebP)."""

    photo: UploadFile


def _client(request: Request[Any, Any, Any]) -> Client:
    return Client(
        address=request.client.host if request.client else "unknown",
        user_agent=request.headers.get("user-agent", ""),
    )


class AuthController(Controller):
    """Accounts and sessions."""

    path = "/auth"
    tags = ["auth"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/register", status_code=201, request_max_body_size=_JSON_LIMIT)
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Registration],
        accounts: NamedDependency[Accounts],
    ) -> Profile:
        """Creates an account. Sign in afterwards with ``/auth/login``. Sign-ups and sign-ins
        from one address share its rate limit."""
        return profile_of(await accounts.register(data, _client(request)))

    @post("/login", status_code=200, request_max_body_size=_JSON_LIMIT)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Login],
        accounts: NamedDependency[Accounts],
    ) -> Tokens:
        """Signs in with an e-mail address or username. Rate-limited per account and address."""
        return await accounts.login(data, _client(request))

    @post("/refresh", status_code=200, request_max_body_size=_JSON_LIMIT)
    async def refresh(self, data: JSONBody[Refresh], accounts: NamedDependency[Accounts]) -> Tokens:
        """Exchanges a refresh token for a new pair; the old refresh token stops working."""
        return await accounts.refresh(data.refresh_token)

    @post("/logout", status_code=204, security=BEARER)
    async def logout(
        self, request: AuthedRequest, accounts: NamedDependency[Accounts], state: State
    ) -> None:
        """Ends this session: its access and refresh tokens stop working, and its live feeds
        close, at once."""
        await accounts.logout(request.user.session_id)
        await _sessions_ended(state, request.user.user_id)

    @get("/me", security=BEARER)
    async def me(self, request: AuthedRequest, accounts: NamedDependency[Accounts]) -> Profile:
        """The signed-in account."""
        return profile_of(await accounts.user(request.user.user_id))

    @get("/profile", security=BEARER)
    async def profile(self, request: AuthedRequest, accounts: NamedDependency[Accounts]) -> Profile:
        """The signed-in account (the same as ``/auth/me``)."""
        return profile_of(await accounts.user(request.user.user_id))

    @put("/profile", request_max_body_size=_JSON_LIMIT, security=BEARER)
    async def update_profile(
        self,
        request: AuthedRequest,
        data: JSONBody[ProfileUpdate],
        accounts: NamedDependency[Accounts],
    ) -> Profile:
        """Changes the e-mail address (with the current password), username or display name."""
        return profile_of(
            await accounts.update_profile(request.user.user_id, data, _client(request))
        )

    @put("/password", status_code=204, request_max_body_size=_JSON_LIMIT, security=BEARER)
    async def change_password(
        self,
        request: AuthedRequest,
        data: JSONBody[PasswordChange],
        accounts: NamedDependency[Accounts],
        state: State,
    ) -> None:
        """Sets a new password; every other session is signed out (its live feeds close)."""
        await accounts.change_password(
            request.user.session_id, request.user.user_id, data, _client(request)
        )
        await _sessions_ended(state, request.user.user_id)

    @put("/photo", request_max_body_size=6 << 20, security=BEARER)
    async def upload_photo(
        self,
        request: AuthedRequest,
        data: MultipartBody[PhotoUpload],
        accounts: NamedDependency[Accounts],
        state: State,
    ) -> Profile:
        """Sets the profile photo (PNG, JPEG, GIF or WebP, within the size limit)."""
        user = await accounts.user(request.user.user_id)
        await save_photo(accounts.db, user, data.photo, state.settings.max_photo_bytes)
        await accounts.db.commit()
        return profile_of(user)

    @get("/photo", media_type="application/octet-stream", security=BEARER)
    async def photo(
        self, request: AuthedRequest, accounts: NamedDependency[Accounts], state: State
    ) -> Response[bytes]:
        """The profile photo."""
        user = await accounts.user(request.user.user_id)
        found = await find_photo(accounts.db, state.settings.data_dir, user)
        if found is None:
            raise NotFound("photo")
        return Response(
            found.data,
            media_type=found.content_type,
            headers={"Content-Disposition": 'inline; filename="photo"',
                     "Cache-Control": "private, no-cache"},
        )  # fmt: skip

    @delete("/photo", status_code=204, security=BEARER)
    async def delete_photo(
        self, request: AuthedRequest, accounts: NamedDependency[Accounts], state: State
    ) -> None:
        """Removes the profile photo."""
        user = await accounts.user(request.user.user_id)
        await remove_photo(accounts.db, state.settings.data_dir, user)
        await accounts.db.commit()
