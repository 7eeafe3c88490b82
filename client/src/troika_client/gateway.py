"""The gateway's HTTP API: one pooled client per process, every call naming its access token.

A web server acts for many signed-in people at once, so :class:`Gateway` keeps no token of its
own; :class:`troika_client.session.Session` is the signed-in client built on it.
"""

from __future__ import annotations

from typing import Any, Self, TypedDict, Unpack

import httpx

from troika_client.errors import ApiError, problem_of

__all__ = ["Gateway", "RequestOptions", "ws_url_of"]

Files = list[tuple[str, tuple[str, bytes, str]]]


class RequestOptions(TypedDict, total=False):
    """What a request carries besides its method and path (``data``: form fields sent with
    ``files``)."""

    json: Any
    params: dict[str, Any] | list[tuple[str, Any]] | None
    files: Files | None
    data: dict[str, str] | None


def ws_url_of(base_url: str) -> str:
    """The live feed's WebSocket address of a gateway at ``base_url``."""
    base = base_url.rstrip("/")
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"


class Gateway:
    """A pooled client of the gateway API.

    Args:
        base_url: The gateway's address, e.g. ``http://127.0.0.1:8000``.
        client_name: Sent as ``X-Troika-Client`` (the gateway records it with each approval).
        timeout: Seconds for any one request.
    """

    def __init__(
        self, base_url: str, *, client_name: str = "troika-client", timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers={"X-Troika-Client": client_name}
        )

    @property
    def ws_url(self) -> str:
        """The live-events WebSocket."""
        return ws_url_of(self.base_url)

    async def send(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        headers: dict[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> httpx.Response:
        """Sends one request to a path of the gateway; a refusal raises.

        Raises:
            ApiError: The gateway answered with an error, or could not be reached (503).
            ValueError: ``path`` is not a path on the gateway (an address elsewhere).
        """
        if not path.startswith("/") or path.startswith("//") or "://" in path:
            raise ValueError(f"not a path on the gateway: {path!r}")
        sent = {name: value for name, value in (headers or {}).items() if value}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            response = await self._http.request(method, path, headers=sent, **options)
        except httpx.HTTPError as exc:
            raise ApiError(503, f"the gateway could not be reached ({type(exc).__name__})") from exc
        if not response.is_success:
            raise problem_of(response)
        return response

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        headers: dict[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Any:  # noqa: ANN401 - a JSON document
        """Sends one request and returns its JSON answer (``None`` for an empty one)."""
        response = await self.send(method, path, token=token, headers=headers, **options)
        return response.json() if response.content else None

    async def close(self) -> None:
        """Closes the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
