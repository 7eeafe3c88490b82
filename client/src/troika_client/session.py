"""A signed-in client: tokens, their renewal, and the calls made with them.

The access token is renewed with the refresh token shortly before it expires and once more when
the gateway answers 401; a :class:`TokenStore` keeps the refresh token between runs (the CLI
keeps it in a file only its owner can read), so a person signs in once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import os
import time
from typing import TYPE_CHECKING, Any, Protocol, Self, Unpack

from troika_client.errors import ApiError
from troika_client.gateway import Gateway

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import httpx

    from troika_client.gateway import Files, RequestOptions

__all__ = ["FileTokenStore", "Session", "TokenStore", "expires_soon"]


def expires_soon(token: str, margin_s: float = 60.0) -> bool:
    """Whether an access token (a JWT) expires within ``margin_s``: read, not verified."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - time.time() < margin_s
    except (IndexError, ValueError, KeyError, TypeError):
        return True


def _content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class TokenStore(Protocol):
    """Where a session's refresh token is kept between runs."""

    def load(self, api: str) -> str:
        """The kept refresh token for the gateway at ``api`` (``""``: none)."""
        ...

    def save(self, api: str, refresh_token: str) -> None:
        """Keeps ``refresh_token`` for the gateway at ``api`` (``""`` forgets it)."""
        ...


class FileTokenStore:
    """Keeps the refresh token in a JSON file readable by its owner only (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, api: str) -> str:
        try:
            kept = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return ""
        if not isinstance(kept, dict) or kept.get("api") != api:
            return ""
        return str(kept.get("refresh_token") or "")

    def save(self, api: str, refresh_token: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({"api": api, "refresh_token": refresh_token}, file)


class _Memory:
    """Keeps nothing beyond the process."""

    def load(self, api: str) -> str:  # noqa: ARG002 - the protocol's signature
        return ""

    def save(self, api: str, refresh_token: str) -> None:
        pass


class Session:
    """One person's signed-in client of the gateway.

    Args:
        gateway: The pooled HTTP client (the session closes it only if it made it).
        store: Where the refresh token is kept between runs (by default, nowhere).
    """

    def __init__(self, gateway: Gateway, store: TokenStore | None = None) -> None:
        self.gateway = gateway
        self.store: TokenStore = store or _Memory()
        self.access_token = ""
        self.refresh_token = ""
        self._renewing: asyncio.Lock | None = None
        self._owns_gateway = False

    @classmethod
    def open(
        cls, api: str, *, client_name: str = "troika-client", store: TokenStore | None = None
    ) -> Self:
        """A session on its own pooled client of the gateway at ``api``, not signed in yet."""
        session = cls(Gateway(api, client_name=client_name), store)
        session._owns_gateway = True
        return session

    @property
    def api(self) -> str:
        """The gateway's address."""
        return self.gateway.base_url

    @property
    def ws_url(self) -> str:
        """The live-events WebSocket."""
        return self.gateway.ws_url

    async def close(self) -> None:
        """Closes the connections (those of a gateway client it made)."""
        if self._owns_gateway:
            await self.gateway.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _use(self, tokens: dict[str, Any]) -> None:
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])
        self.store.save(self.api, self.refresh_token)

    async def login(self, login: str, password: str) -> None:
        """Signs in with a username (or e-mail) and password.

        Raises:
            ApiError: Wrong credentials, or too many attempts.
        """
        body = {"login": login, "password": password}
        self._use(await self.gateway.call("POST", "/auth/login", json=body))

    async def register(self, email: str, username: str, password: str) -> None:
        """Creates an account, then signs in.

        Raises:
            ApiError: The account could not be made (taken, or the input was wrong).
        """
        body = {"email": email, "username": username, "password": password}
        await self.gateway.call("POST", "/auth/register", json=body)
        await self.login(username, password)

    async def resume(self) -> bool:
        """Renews the session with its refresh token (the kept one when it has none yet).

        Returns:
            Whether the session is signed in now.
        """
        if self._renewing is None:
            self._renewing = asyncio.Lock()
        used = self.refresh_token
        async with self._renewing:
            if self.refresh_token != used and self.access_token:
                return True  # renewed by another call while this one waited
            refresh = self.refresh_token or self.store.load(self.api)
            if not refresh:
                return False
            try:
                tokens = await self.gateway.call(
                    "POST", "/auth/refresh", json={"refresh_token": refresh}
                )
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                return False
            self._use(tokens)
            return True

    async def token(self) -> str:
        """A current access token, renewed first when it is about to expire."""
        if self.access_token and expires_soon(self.access_token):
            await self.resume()
        return self.access_token

    async def logout(self) -> None:
        """Ends the session on the gateway too, and forgets the kept refresh token."""
        try:
            await self.send("POST", "/auth/logout")
        finally:
            self.access_token = self.refresh_token = ""
            self.store.save(self.api, "")

    async def send(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Sends a request as this person; an expired access token is renewed once.

        Raises:
            ApiError: The gateway refused (401: the session cannot be renewed).
        """
        try:
            return await self.gateway.send(method, path, token=await self.token(), **options)
        except ApiError as exc:
            if exc.status != 401 or not await self.resume():
                raise
        return await self.gateway.send(method, path, token=self.access_token, **options)

    async def call(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Any:  # noqa: ANN401 - JSON
        """Sends a request as this person and returns its JSON answer (``None``: empty)."""
        response = await self.send(method, path, **options)
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:  # noqa: ANN401 - JSON
        """``GET`` a JSON document."""
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:  # noqa: ANN401
        """``POST`` JSON; returns the JSON answer."""
        return await self.call("POST", path, json=body or {})

    async def create_task(self, body: dict[str, Any], files: Sequence[Path] = ()) -> Any:  # noqa: ANN401 - JSON
        """Creates a task; with ``files``, in one request, so that its plan knows them."""
        if not files:
            return await self.post("/tasks", body)
        parts: Files = [
            ("files", (path.name, path.read_bytes(), _content_type(path))) for path in files
        ]
        return await self.call(
            "POST", "/tasks/with-files", data={"task": json.dumps(body)}, files=parts
        )
