"""The signed-in person: tokens kept in the browser, API calls, and the live view.

The access and refresh tokens live in the browser's local storage, so a reload (or a new tab)
stays signed in; an expired access token is renewed once with the refresh token, and a
session that cannot be renewed sends the person to the sign-in page.

While a page is open, one background job per tab follows the gateway's ``/ws`` and hands each
event to the pages' states; it resumes after lost connections (see :class:`troika_client.LiveFeed`)
and ends once the tab has been gone for ``TROIKA_WEB_IDLE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import reflex as rx
import structlog

from troika_client import CONNECTED, ApiError, Gateway, LiveFeed, LiveRefused, expires_soon
from troika_frontend.settings import WebSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["SessionState", "gateway", "gateway_call", "listen", "local_path", "settings"]

log = structlog.get_logger("troika.web")

CLIENT_NAME = "troika-web"

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
        _gateway.append(Gateway(settings().gateway_url, client_name=CLIENT_NAME))
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


_RENEWALS: dict[tuple[str, str], asyncio.Future[Any]] = {}
_RENEWAL_KEPT_S = 120.0


async def _exchange(
    refresh_token: str, browser: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Renews a session once, however many tabs of one browser ask at the same moment.

    Refresh tokens are single-use: tabs of one browser share theirs (local storage), so without
    this the first tab to renew would sign the others out. The answer is kept for a while for
    the tabs that ask with the old token a little later — tabs of the same browser only (its
    random id in local storage): anyone else showing the old token goes to the gateway, which
    refuses it (and ends the session when the token was copied).
    """
    key = (browser, refresh_token)
    pending = _RENEWALS.get(key)
    if pending is None:
        pending = asyncio.ensure_future(
            gateway().call(
                "POST", "/auth/refresh", json={"refresh_token": refresh_token}, headers=headers
            )
        )
        _RENEWALS[key] = pending
        asyncio.get_running_loop().call_later(_RENEWAL_KEPT_S, _RENEWALS.pop, key, None)
    answer: dict[str, Any] = await asyncio.shield(pending)
    return answer


async def _no_token() -> str:
    return ""  # replaced by the tab's own once its live view starts


def local_path(target: str) -> str:
    """``target`` if it is a page of this app (a path, nothing that could lead elsewhere: no
    scheme, no host, no ``//`` or backslash), else ``/``."""
    parts = urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or "\\" in target
        or parts.scheme
        or parts.netloc
    ):
        return "/"
    return target


def _tab_connected(client_token: str) -> bool:
    from troika_frontend.app import app  # noqa: PLC0415 - the app module imports the pages

    namespace = app.event_namespace
    return namespace is not None and client_token in namespace.token_to_sid


_PENDING_KINDS = frozenset(
    {
        "approval.requested",
        "tool.approved",
        "tool.denied",
        "approval.expired",
        "task.status",
        CONNECTED,
    }
)


class SessionState(rx.State):
    """Who is signed in, and the calls made on their behalf."""

    access_token: str = rx.LocalStorage("", name="troika.access", sync=True)
    refresh_token: str = rx.LocalStorage("", name="troika.refresh", sync=True)
    # This browser, whichever tab: its tabs share one renewal of the session (see _exchange).
    browser_id: str = rx.LocalStorage("", name="troika.browser", sync=True)
    username: str = ""
    email: str = ""
    display_name: str = ""
    has_photo: bool = False
    pending: int = 0
    live: bool = False
    navigation_open: bool = False  # on a phone, whether the menu's links are shown
    _watching: bool = False

    @rx.var
    def signed_in(self) -> bool:
        """Whether a session is kept in this browser."""
        return bool(self.access_token)

    # Reflex lets the browser call every public method of a state as an event: whatever only
    # the server may call is private (a leading underscore).

    def _client(self) -> dict[str, str]:
        """Who is really asking (the gateway trusts this from the web app alone)."""
        router = self.router
        return {
            "X-Forwarded-For": str(router.session.client_ip or ""),
            "User-Agent": str(router.headers.user_agent or "")[:300],
        }

    async def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401 - JSON
        """Calls the gateway as this person, renewing an expired access token first.

        Raises:
            ApiError: The gateway refused (401: signed out, or a wrong password was given).
        """
        response = await self._send(method, path, **kwargs)
        return response.json() if response.content else None

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401
        if self.access_token and expires_soon(self.access_token, margin_s=5):
            await self._renew()
        headers = self._client()
        try:
            return await gateway().send(
                method, path, token=self.access_token, headers=headers, **kwargs
            )
        except ApiError as exc:
            # A 401 with a token that has not expired is an answer (a wrong current password,
            # an ended session), not a reason to spend the refresh token.
            if exc.status != 401 or not expires_soon(self.access_token, margin_s=30):
                raise
            if not await self._renew():
                raise
        return await gateway().send(
            method, path, token=self.access_token, headers=headers, **kwargs
        )

    async def _fetch(self, path: str) -> bytes:
        """Downloads bytes (a file, a photo) as this person."""
        response = await self._send("GET", path)
        return bytes(response.content)

    async def _renew(self) -> bool:
        if not self.refresh_token:
            return False
        try:
            tokens = await _exchange(self.refresh_token, self._browser(), self._client())
        except ApiError as exc:
            if exc.status in (400, 401, 403, 422):  # the session is over
                self.access_token = self.refresh_token = ""
            return False  # the gateway is away: keep the session for when it is back
        self._use_tokens(tokens)
        return True

    def _browser(self) -> str:
        """This browser's random id, made the first time it is needed."""
        if not self.browser_id:
            self.browser_id = secrets.token_urlsafe(18)
        return self.browser_id

    def _use_tokens(self, tokens: dict[str, Any]) -> None:
        """Keeps a new pair of tokens in the browser (named at sign-in, before a tab renews)."""
        self._browser()
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])

    def _signed_out(self) -> Any:  # noqa: ANN401 - a Reflex event spec
        """Forgets the session, and everything the pages held for it, and goes to sign in."""
        self.access_token = self.refresh_token = ""
        _feeds.pop(self.router.session.client_token, None)  # ends this tab's live view
        self.username = self.email = self.display_name = ""
        self.pending = 0
        for state in self.substates.values():  # the pages: nothing is left for the next person
            state.reset()  # type: ignore[no-untyped-call]
        return rx.redirect("/signin")

    async def _refresh_me(self) -> None:
        """Reloads who is signed in (name, photo) and the pending approvals count."""
        me = await self._api("GET", "/auth/me")
        self.username = str(me.get("username", ""))
        self.email = str(me.get("email", ""))
        self.display_name = str(me.get("display_name") or me.get("username") or "")
        self.has_photo = bool(me.get("photo_url"))
        await self._refresh_pending()

    async def _refresh_pending(self) -> None:
        """Recounts the actions that wait for this person, across all tasks."""
        self.pending = len(await self._api("GET", "/interactions/pending"))

    @rx.event
    async def guard(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """On every signed-in page: back to sign-in without a session; starts the live view."""
        self.navigation_open = False  # a new page: the phone's menu closes
        if not self.access_token:
            asked = str(self.router.url.path or "/")
            if asked in ("", "/"):
                return rx.redirect("/signin")
            return rx.redirect("/signin?next=" + quote(asked, safe="/"))
        try:
            await self._refresh_me()
        except ApiError as exc:
            if exc.status == 401:
                return self._signed_out()
            return [rx.toast.error(exc.message), SessionState.watch]
        return SessionState.watch

    @rx.event
    def toggle_navigation(self) -> None:
        """Opens or closes the menu (on a phone's narrow screen)."""
        self.navigation_open = not self.navigation_open

    @rx.event
    def keep_live(self, _: str = "") -> Any:  # noqa: ANN401
        """Called now and then by every signed-in page: restarts a live view that ended (the
        tab slept past the idle limit, or the gateway refused it for a while)."""
        if self.access_token and not self._watching:
            return SessionState.watch
        return None

    @rx.event
    async def sign_out(self) -> Any:  # noqa: ANN401
        """Ends the session on the gateway too (the refresh token stops working)."""
        with contextlib.suppress(ApiError):
            await self._send("POST", "/auth/logout")
        return self._signed_out()

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
                if expires_soon(self.access_token):
                    await self._renew()  # shared with the other tabs of this session
                return self.access_token

        feed = _feeds.get(client)
        if feed is None:
            feed = _feeds[client] = LiveFeed(gateway().ws_url, token)
        feed.token = token
        follower = asyncio.create_task(self._follow(feed))
        gone_since: float | None = None
        shown: bool | None = None
        try:
            # Signing out takes the feed away; the tab's state is locked only when the
            # connection's state changes, not every second.
            while not follower.done() and _feeds.get(client) is feed:
                await asyncio.sleep(1)
                if _tab_connected(client):
                    gone_since = None
                elif gone_since is None:
                    gone_since = time.monotonic()
                elif time.monotonic() - gone_since > settings().web_idle_s:
                    break
                if (connected := feed.connected.is_set()) != shown:
                    shown = connected
                    async with self:
                        self.live = connected
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, LiveRefused, Exception):
                await follower
            if _feeds.get(client) is feed:
                del _feeds[client]
            async with self:
                self._watching = False
                self.live = False

    async def _follow_task(self, task_id: str, after: int) -> None:
        """Makes the live view deliver the task's events after ``after`` (see ``LiveFeed``)."""
        client = self.router.session.client_token
        feed = _feeds.get(client)
        if feed is None:
            feed = _feeds[client] = LiveFeed(gateway().ws_url, _no_token)
        await feed.resume(task_id, after)

    async def _follow(self, feed: LiveFeed) -> None:
        async for live in feed.events():
            event = live.as_dict()  # the pages keep plain JSON in their state
            async with self:
                if event["kind"] == "live.connected":
                    self.live = True
                for handler in _listeners:
                    try:
                        await handler(self, event)
                    except ApiError as exc:
                        log.info("live.refresh_failed", status=exc.status, detail=exc.detail)
                    except Exception:  # a page's bug must not end everyone's live view
                        log.exception("live.listener_failed", kind=event["kind"])
                if event["kind"] in _PENDING_KINDS:
                    with contextlib.suppress(ApiError):
                        await self._refresh_pending()
