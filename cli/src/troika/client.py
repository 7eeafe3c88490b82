"""The gateway's public API from a terminal: a signed-in session and the calls the CLI makes.

The session's refresh token is kept in ``$XDG_CONFIG_HOME/troika/session.json`` (readable by
the owner only), so ``troika task`` signs in once; ``TROIKA_USERNAME`` and ``TROIKA_PASSWORD``
sign in without a prompt.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ApiError", "Session", "session_file"]

CLIENT_NAME = "troika-cli"


class ApiError(Exception):
    """The gateway refused a request; ``detail`` says why in its words."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors


def session_file() -> Path:
    """Where the session is kept."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "troika" / "session.json"


def _raise_for(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = str(body.get("detail") or response.text or response.reason_phrase)
    raise ApiError(response.status_code, detail, list(body.get("errors") or []))


@dataclass
class Session:
    """A signed-in API client.

    Attributes:
        api: The gateway's address.
        http: The HTTP client (with the access token once signed in).
    """

    api: str
    http: httpx.AsyncClient
    access_token: str = ""
    refresh_token: str = ""

    @classmethod
    def open(cls, api: str) -> Self:
        """A client for ``api``, not signed in yet."""
        http = httpx.AsyncClient(
            base_url=api.rstrip("/"), timeout=30, headers={"X-Troika-Client": CLIENT_NAME}
        )
        return cls(api=api.rstrip("/"), http=http)

    async def close(self) -> None:
        """Closes the connections."""
        await self.http.aclose()

    def _use(self, tokens: dict[str, Any]) -> None:
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])
        self.http.headers["Authorization"] = f"Bearer {self.access_token}"
        path = session_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({"api": self.api, "refresh_token": self.refresh_token}, file)

    async def resume(self) -> bool:
        """Signs in with the kept refresh token, if there is one for this gateway."""
        path = session_file()
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        if kept.get("api") != self.api or not kept.get("refresh_token"):
            return False
        response = await self.http.post(
            "/auth/refresh", json={"refresh_token": kept["refresh_token"]}
        )
        if not response.is_success:
            return False
        self._use(response.json())
        return True

    async def login(self, login: str, password: str) -> None:
        """Signs in with a username (or e-mail) and password.

        Raises:
            ApiError: Wrong credentials, or too many attempts.
        """
        response = await self.http.post("/auth/login", json={"login": login, "password": password})
        self._use(_raise_for(response).json())

    async def register(self, email: str, username: str, password: str) -> None:
        """Creates an account, then signs in."""
        body = {"email": email, "username": username, "password": password}
        _raise_for(await self.http.post("/auth/register", json=body))
        await self.login(username, password)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:  # noqa: ANN401
        """Sends a request; an expired access token is renewed once with the kept session."""
        response = await self.http.request(method, path, **kwargs)
        if response.status_code == 401 and await self.resume():
            response = await self.http.request(method, path, **kwargs)
        return _raise_for(response)

    async def get(self, path: str, **params: Any) -> Any:  # noqa: ANN401 - JSON
        """``GET`` a JSON document."""
        return (await self._send("GET", path, params=params or None)).json()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:  # noqa: ANN401
        """``POST`` JSON; returns the JSON answer."""
        return (await self._send("POST", path, json=body or {})).json()

    async def create_task(self, body: dict[str, Any], files: Sequence[Path] = ()) -> Any:  # noqa: ANN401 - JSON
        """Creates a task; with ``files``, in one request, so that its plan knows them."""
        if not files:
            return await self.post("/tasks", body)
        parts = [("files", (path.name, path.read_bytes())) for path in files]
        response = await self._send(
            "POST", "/tasks/with-files", data={"task": json.dumps(body)}, files=parts
        )
        return response.json()

    @property
    def ws_url(self) -> str:
        """The live-events WebSocket."""
        return self.api.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"
