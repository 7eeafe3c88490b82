"""The gateway's public API, the only way the web app reaches the system.

One :class:`Gateway` per process (it pools connections); every call names the access token it
acts with, because one web server serves many signed-in people at once.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError", "Gateway", "field_errors"]

CLIENT_NAME = "troika-web"


class ApiError(Exception):
    """The gateway refused a request, or could not be reached.

    Attributes:
        status: The HTTP status (503 when the gateway did not answer).
        detail: Why, in the gateway's words.
        errors: Per-field problems (``{"field": …, "message": …}``) where the input was wrong.
    """

    def __init__(
        self, status: int, detail: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []

    @property
    def message(self) -> str:
        """One line for the person: the detail, with the fields that were wrong."""
        fields = field_errors(self.errors)
        if not fields:
            return self.detail
        return self.detail + ": " + "; ".join(f"{name} {text}" for name, text in fields.items())


def field_errors(errors: list[dict[str, Any]]) -> dict[str, str]:
    """``{"field": "message"}`` from a problem document's ``errors`` (``$.`` prefixes dropped)."""
    found: dict[str, str] = {}
    for error in errors:
        name = str(error.get("field") or error.get("key") or "").removeprefix("$.")
        found.setdefault(name or "input", str(error.get("message") or "is not valid"))
    return found


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    return ApiError(response.status_code, detail, errors)


class Gateway:
    """A pooled client for the gateway API.

    Args:
        base_url: The gateway's address, e.g. ``http://127.0.0.1:8000``.
        timeout: Seconds for any one request.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers={"X-Troika-Client": CLIENT_NAME}
        )

    @property
    def ws_url(self) -> str:
        """The live-events WebSocket."""
        return self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"

    async def send(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        json: Any = None,  # noqa: ANN401 - a JSON document
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Sends one request to a path of the gateway; a refusal raises. ``data`` are form
        fields sent with ``files``.

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
            response = await self._http.request(
                method, path, headers=sent, json=json, params=params, files=files, data=data
            )
        except httpx.HTTPError as exc:
            raise ApiError(503, f"the gateway could not be reached ({type(exc).__name__})") from exc
        if not response.is_success:
            raise _problem(response)
        return response

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        json: Any = None,  # noqa: ANN401 - a JSON document
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:  # noqa: ANN401 - a JSON document
        """Sends one request and returns its JSON answer (``None`` for an empty one)."""
        response = await self.send(
            method,
            path,
            token=token,
            json=json,
            params=params,
            files=files,
            data=data,
            headers=headers,
        )
        return response.json() if response.content else None

    async def close(self) -> None:
        """Closes the pooled connections."""
        await self._http.aclose()
