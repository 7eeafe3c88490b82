"""The signed-in person: tokens kept in the browser, API calls, and the live view.

The access and refresh tokens live in the browser's local storage, so a reload (or a new tab)
stays signed in; an expired access token is renewed once with the refresh token, and a
session that cannot be renewed sends the person to the sign-in page.

While a page is open, one background job per tab follows the gateway's ``/ws`` and hands each
event to the pages' states; it resumes after lost connections (see :mod:`troika_frontend.live`)
and ends once the tab has been gone for ``TROIKA_WEB_IDLE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import reflex as rx
import structlog

from troika_frontend.gateway import ApiError, Gateway
from troika_frontend.live import LiveFeed, LiveRefused
from troika_frontend.settings import WebSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["SessionState", "gateway", "gateway_call", "listen", "settings"]

log = structlog.get_logger("troika.web")

_settings: list[WebSettings] = []
_gateway: list[Gateway] = []
# Live-event listeners of the page states: called with (state, event) under the state's lock.
_listeners: list[Callable[[SessionState, dict[str, Any]], Awaitable[None]]] = []
# The live feed of each open tab (by Reflex's client token).
_feeds: dict[str, LiveFeed] = {}


def settings() -> WebSettings:
    """This process's settings (read once, when the first page is served)."""
    if not _settings:
        _settings.append(WebSettings())
    return _settings[0]


def gateway() -> Gateway:
    """This process's client of the gateway API."""
    if not _gateway:
        _gateway.append(Gateway(settings().gateway_url))
    return _gateway[0]


async def gateway_call(method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401 - JSON
    """Calls the gateway without a session (signing in and up)."""
    return await gateway().call(method, path, **kwargs)


def listen(
    handler: Callable[[SessionState, dict[str, Any]], Awaitable[None]],
) -> Callable[[SessionState, dict[str, Any]], Awaitable[None]]:
    """Registers a page's handler of live events (a decorator)."""
    _listeners.append(handler)
    return handler


async def _no_token() -> str:
    return ""  # replaced by the tab's own once its live view starts


def _tab_connected(client_token: str) -> bool:
    from troika_frontend.app import app  # noqa: PLC0415 - the app module imports the pages

    namespace = app.event_namespace
    return namespace is not None and client_token in namespace.token_to_sid


_PENDING_KINDS = frozenset(
    {"approval.requested", "tool.approved", "tool.denied", "approval.expired", "task.status"}
)


class SessionState(rx.State):
    """Who is signed in, and the calls made on their behalf."""

    access_token: str = rx.LocalStorage("", name="troika.access", sync=True)
    refresh_token: str = rx.LocalStorage("", name="troika.refresh", sync=True)
    username: str = ""
    email: str = ""
    display_name: str = ""
    has_photo: bool = False
    pending: int = 0
    live: bool = False
    _watching: bool = False

    @rx.var
    def signed_in(self) -> bool:
        """Whether a session is kept in this browser."""
        return bool(self.access_token)

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401 - JSON
        """Calls the gateway as this person, renewing an expired access token once.

        Raises:
            ApiError: The gateway refused (401 after a failed renewal: signed out).
        """
        try:
            return await gateway().call(method, path, token=self.access_token, **kwargs)
        except ApiError as exc:
            if exc.status != 401 or not await self._renew():
                raise
        return await gateway().call(method, path, token=self.access_token, **kwargs)

    async def fetch(self, path: str, **params: Any) -> bytes:  # noqa: ANN401
        """Downloads bytes (a file, a photo) as this person."""
        try:
            response = await gateway().send("GET", path, token=self.access_token, params=params)
        except ApiError as exc:
            if exc.status != 401 or not await self._renew():
                raise
            response = await gateway().send("GET", path, token=self.access_token, params=params)
        return response.content

    async def _renew(self) -> bool:
        if not self.refresh_token:
            return False
        try:
            tokens = await gateway().call(
                "POST", "/auth/refresh", json={"refresh_token": self.refresh_token}
            )
        except ApiError:
            self.access_token = self.refresh_token = ""
            return False
        self.use_tokens(tokens)
        return True

    def use_tokens(self, tokens: dict[str, Any]) -> None:
        """Keeps a new pair of tokens in the browser."""
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])

    def signed_out(self) -> Any:  # noqa: ANN401 - a Reflex event spec
        """Forgets the session and goes to the sign-in page."""
        self.access_token = self.refresh_token = ""
        self.username = self.email = ""
        return rx.redirect("/signin")

    async def refresh_me(self) -> None:
        """Reloads who is signed in (name, photo) and the pending approvals count."""
        me = await self.api("GET", "/auth/me")
        self.username = str(me.get("username", ""))
        self.email = str(me.get("email", ""))
        self.display_name = str(me.get("display_name") or me.get("username") or "")
        self.has_photo = bool(me.get("photo_url"))
        await self.refresh_pending()

    async def refresh_pending(self) -> None:
        """Recounts the actions that wait for this person, across all tasks."""
        self.pending = len(await self.api("GET", "/interactions/pending"))

    @rx.event
    async def guard(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """On every signed-in page: back to sign-in without a session; starts the live view."""
        if not self.access_token:
            return rx.redirect("/signin")
        try:
            await self.refresh_me()
        except ApiError as exc:
            if exc.status == 401:
                return self.signed_out()
            return rx.toast.error(exc.message)
        return SessionState.watch

    @rx.event
    async def sign_out(self) -> Any:  # noqa: ANN401
        """Ends the session on the gateway too (the refresh token stops working)."""
        with contextlib.suppress(ApiError):
            await gateway().call("POST", "/auth/logout", token=self.access_token)
        return self.signed_out()

    @rx.event(background=True)
    async def watch(self) -> None:
        """Follows the live events of this person's tasks while the tab is open."""
        async with self:
            if self._watching or not self.access_token:
                return
            self._watching = True
            client = self.router.session.client_token

        async def token() -> str:
            async with self:
                with contextlib.suppress(ApiError):
                    await self._renew()  # a fresh access token for each new connection
                return self.access_token

        feed = _feeds.get(client)
        if feed is None:
            feed = _feeds[client] = LiveFeed(gateway().ws_url, token)
        feed.token = token
        follower = asyncio.create_task(self._follow(feed))
        gone_since: float | None = None
        try:
            while not follower.done():
                await asyncio.sleep(1)
                if _tab_connected(client):
                    gone_since = None
                elif gone_since is None:
                    gone_since = time.monotonic()
                elif time.monotonic() - gone_since > settings().web_idle_s:
                    break
                async with self:
                    self.live = feed.connected.is_set()
                    if not self.access_token:
                        break  # signed out
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, LiveRefused, Exception):
                await follower
            _feeds.pop(client, None)
            async with self:
                self._watching = False
                self.live = False

    async def follow_task(self, task_id: str, after: int) -> None:
        """Makes the live view deliver the task's events after ``after`` (see ``LiveFeed``)."""
        client = self.router.session.client_token
        feed = _feeds.get(client)
        if feed is None:
            feed = _feeds[client] = LiveFeed(gateway().ws_url, _no_token)
        await feed.resume(task_id, after)

    async def _follow(self, feed: LiveFeed) -> None:
        async for event in feed.events():
            async with self:
                for handler in _listeners:
                    try:
                        await handler(self, event)
                    except ApiError as exc:
                        log.info("live.refresh_failed", status=exc.status, detail=exc.detail)
                if event["kind"] in _PENDING_KINDS:
                    with contextlib.suppress(ApiError):
                        await self.refresh_pending()
