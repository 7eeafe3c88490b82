"""The account endpoints: ``/auth/…``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.params import JSONBody, MultipartBody
from litestar.response import File

from troika_gateway.auth.accounts import Accounts, Client, profile_of
from troika_gateway.auth.middleware import Principal
from troika_gateway.auth.photos import photo_path, sniff_image
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
from troika_gateway.storage import store_upload

__all__ = ["AuthController", "PhotoUpload"]

AuthedRequest = Request[Principal, Any, State]
_JSON_LIMIT = 64 * 1024  # account requests are small


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
        self, data: JSONBody[Registration], accounts: NamedDependency[Accounts]
    ) -> Profile:
        """Creates an account. Sign in afterwards with ``/auth/login``."""
        return profile_of(await accounts.register(data))

    @post("/login", status_code=200, request_max_body_size=_JSON_LIMIT)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Login],
        accounts: NamedDependency[Accounts],
        state: State,
    ) -> Tokens:
        """Signs in with an e-mail address or username. Rate-limited per account and address."""
        return await accounts.login(data, _client(request), state.login_limiter)

    @post("/refresh", status_code=200, request_max_body_size=_JSON_LIMIT)
    async def refresh(self, data: JSONBody[Refresh], accounts: NamedDependency[Accounts]) -> Tokens:
        """Exchanges a refresh token for a new pair; the old refresh token stops working."""
        return await accounts.refresh(data.refresh_token)

    @post("/logout", status_code=204, security=BEARER)
    async def logout(self, request: AuthedRequest, accounts: NamedDependency[Accounts]) -> None:
        """Ends this session: its access and refresh tokens stop working at once."""
        await accounts.logout(request.user.session_id)

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
        return profile_of(await accounts.update_profile(request.user.user_id, data))

    @put("/password", status_code=204, request_max_body_size=_JSON_LIMIT, security=BEARER)
    async def change_password(
        self,
        request: AuthedRequest,
        data: JSONBody[PasswordChange],
        accounts: NamedDependency[Accounts],
    ) -> None:
        """Sets a new password; every other session is signed out."""
        await accounts.change_password(request.user.session_id, request.user.user_id, data)

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
        media_type = sniff_image(await data.photo.read(16))
        await data.photo.seek(0)
        target = photo_path(state.settings.data_dir, user.id)
        await store_upload(data.photo, target, state.settings.max_photo_bytes)
        user.photo_content_type = media_type
        user.photo_updated_at = datetime.now(UTC)
        await accounts.db.commit()
        return profile_of(user)

    @get("/photo", media_type="application/octet-stream", security=BEARER)
    async def photo(
        self, request: AuthedRequest, accounts: NamedDependency[Accounts], state: State
    ) -> File:
        """The profile photo."""
        user = await accounts.user(request.user.user_id)
        path = photo_path(state.settings.data_dir, user.id)
        if user.photo_content_type is None or not await anyio.Path(path).exists():
            raise NotFound("photo")
        return File(
            path=path,
            media_type=user.photo_content_type,
            content_disposition_type="inline",
            filename="photo",
        )

    @delete("/photo", status_code=204, security=BEARER)
    async def delete_photo(
        self, request: AuthedRequest, accounts: NamedDependency[Accounts], state: State
    ) -> None:
        """Removes the profile photo."""
        user = await accounts.user(request.user.user_id)
        await anyio.Path(photo_path(state.settings.data_dir, user.id)).unlink(missing_ok=True)
        user.photo_content_type = None
        user.photo_updated_at = None
        await accounts.db.commit()
