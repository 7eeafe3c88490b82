"""One isolated browser context per task, kept across the task's steps and replicas.

A task's page lives in the executor replica that last used it; after every action its cookies,
local storage and address are stored, sealed, in the task's hidden ``.browser`` folder with a
generation number, and the page's screenshot beside them (the approval shows it). Any replica can
therefore carry on: a replica that holds no page for the task, or an older generation than the
stored one (another replica acted since), opens a fresh context from the stored state. A page
that lives on keeps what is not stored (a half-typed form, script state); one that was rebuilt
starts again at its address, logged in.

Each replica keeps at most ``max_contexts`` pages open: an idle one makes room (its state is
stored already), and a step waits for a slot when all are busy (then it is retried). Pages close
when their task stops, or after ``idle_s`` without use; Chromium itself closes when no page is
left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import structlog
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from troika_executor.browser.egress import Egress
from troika_shared.browser import browser_folder, screen_path
from troika_shared.errors import DependencyUnavailable
from troika_shared.vault import VaultError, open_secret, seal_secret

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from troika_executor.net import OutboundPolicy

__all__ = ["MARK", "BrowserMissing", "Browsers", "Session"]

log = structlog.get_logger("troika.executor.browser")

_STATE = "state.json"

LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # Chromium resolves no name by itself: every request goes through the guarded proxy.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)
MARK = "TROIKA_BROWSER_OF"
"""An environment variable every Chromium process of the executor carries (its data folder):
what finds them, children included, in a list of processes."""
VIEWPORT = {"width": 1280, "height": 800}


class BrowserMissing(RuntimeError):
    """The configured Chromium is not on this machine (the call fails with this reason)."""


@dataclass(slots=True)
class Session:
    """A task's live browser context and its page."""

    task_id: str
    context: BrowserContext
    page: Page
    proxy_user: str
    generation: int
    used: float = field(default_factory=time.monotonic)
    closed: bool = False
    stored: bool = False


_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASS|CREDENTIAL|^TROIKA_|_URL$", re.IGNORECASE)


def _plain_environment() -> dict[str, str]:
    """The executor's environment without its secrets and settings (Chromium reads untrusted
    pages)."""
    return {name: value for name, value in os.environ.items() if not _SECRET_NAME.search(name)}


class Browsers:
    """The executor's browser contexts, one per task.

    Args:
        data_dir: The data folder (task workspaces under ``workspaces/``).
        policy: Where pages may connect (the outbound guard).
        executable: The system's Chromium.
        max_contexts: Pages open at once in this replica.
        idle_s: A page unused this long is closed (its state is kept).
        state_key: Seals the stored cookies (the executor's key for call secrets).
        wait_s: How long a step waits for a slot before it is retried later.
    """

    def __init__(
        self,
        data_dir: Path,
        policy: OutboundPolicy,
        *,
        executable: str = "/usr/bin/chromium",
        max_contexts: int = 4,
        idle_s: float = 600.0,
        state_key: bytes | None = None,
        wait_s: float = 60.0,
    ) -> None:
        self.data_dir = data_dir
        self.egress = Egress(policy)
        self.executable = executable
        self.max_contexts = max_contexts
        self.idle_s = idle_s
        self.state_key = state_key
        self.wait_s = wait_s
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._live: dict[str, Session] = {}
        self._opening = 0  # slots taken by pages being opened, not yet in ``_live``
        self._locks: dict[str, asyncio.Lock] = {}
        self._room = asyncio.Condition()
        self._start_lock = asyncio.Lock()

    def folder(self, task_id: str) -> Path:
        """The task's hidden browser folder."""
        return browser_folder(self.data_dir, task_id)

    @property
    def open_tasks(self) -> list[str]:
        """The tasks whose pages are open in this replica."""
        return list(self._live)

    # --- using a task's page -------------------------------------------------------------------

    @asynccontextmanager
    async def use(self, task_id: str) -> AsyncIterator[Session]:
        """The task's page, for one action (one action at a time per task); its state and
        screenshot are stored when the action is done.

        Raises:
            DependencyUnavailable: No slot became free in time, or Chromium does not start.
        """
        lock = self._locks.setdefault(task_id, asyncio.Lock())
        async with lock:
            session = await self._session(task_id)
            session.stored = False
            try:
                yield session
            finally:
                session.used = time.monotonic()
                if not session.closed and not session.stored:
                    await self.store(session)

    async def _session(self, task_id: str) -> Session:
        stored = await anyio.to_thread.run_sync(self._read_state, task_id)
        generation = stored.get("generation", 0) if stored else 0
        live = self._live.get(task_id)
        if live is not None and live.generation == generation and not live.page.is_closed():
            return live
        if live is not None:  # another replica acted since, or the page crashed
            await self._close(live)
        await self._make_room()
        try:
            return await self._open(task_id, stored, generation)
        finally:
            self._opening -= 1

    async def _open(self, task_id: str, stored: dict[str, Any] | None, generation: int) -> Session:
        browser = await self._chromium()
        user, account = self.egress.account()
        state = self._open_state(task_id, stored) if stored else {}
        try:
            context = await browser.new_context(
                proxy=account,
                storage_state=state.get("storage") or None,
                accept_downloads=True,
                service_workers="block",
                viewport=VIEWPORT,  # type: ignore[arg-type]
            )
            context.set_default_timeout(15_000)
            context.set_default_navigation_timeout(30_000)
            page = await context.new_page()
        except PlaywrightError as exc:
            self.egress.forget(user)
            raise DependencyUnavailable("chromium", f"could not open a browser: {exc}") from exc
        session = Session(task_id, context, page, user, generation)
        self._live[task_id] = session
        url = state.get("url") or ""
        if url.startswith(("http://", "https://")):
            with contextlib.suppress(PlaywrightError):  # the action reports what the page shows
                await page.goto(url)
        log.info("browser.opened", task_id=task_id, resumed=bool(url), open=len(self._live))
        return session

    async def _make_room(self) -> None:
        """Takes a slot (``_opening``), closing the least recently used idle page if need be.

        Raises:
            DependencyUnavailable: Every slot stayed busy for ``wait_s``.
        """
        deadline = time.monotonic() + self.wait_s
        async with self._room:
            while len(self._live) + self._opening >= self.max_contexts:
                idle = [
                    s
                    for s in self._live.values()
                    if not self._locks.get(s.task_id, asyncio.Lock()).locked()
                ]
                if idle:
                    await self._close(min(idle, key=lambda s: s.used), notify=False)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DependencyUnavailable(
                        "browser",
                        f"all {self.max_contexts} browser slots of this executor are busy",
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), left)
            self._opening += 1

    async def _chromium(self) -> Browser:
        async with self._start_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            self._live.clear()  # pages of a browser that went away are gone with it
            if not await anyio.Path(self.executable).is_file():
                raise BrowserMissing(
                    f"the browser tools need Chromium at {self.executable} "
                    "(TROIKA_BROWSER_EXECUTABLE); it is not installed on this executor's machine"
                )
            try:
                await self.egress.start()
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self.executable,
                    args=list(LAUNCH_ARGS),
                    headless=True,
                    env={**_plain_environment(), MARK: str(self.data_dir)},
                )
            except PlaywrightError as exc:
                raise DependencyUnavailable("chromium", f"Chromium did not start: {exc}") from exc
            log.info("browser.started", executable=self.executable)
            return self._browser

    # --- closing -------------------------------------------------------------------------------

    async def forget(self, task_id: str) -> None:
        """Closes the task's page and deletes its stored state (``browser_close``, or the task
        stopped): its cookies are gone."""
        live = self._live.get(task_id)
        if live is not None:
            await self._close(live)
        lock = self._locks.get(task_id)
        if lock is not None and not lock.locked():
            del self._locks[task_id]
        await anyio.to_thread.run_sync(
            lambda: shutil.rmtree(self.folder(task_id), ignore_errors=True)
        )

    async def _close(self, session: Session, *, notify: bool = True) -> None:
        session.closed = True
        if self._live.get(session.task_id) is session:
            del self._live[session.task_id]
        self.egress.forget(session.proxy_user)
        with contextlib.suppress(PlaywrightError):
            await session.context.close()
        if notify:  # a step may be waiting for the slot
            async with self._room:
                self._room.notify_all()

    async def sweep(self, stopped: Callable[[str], Awaitable[bool]] | None) -> int:
        """Closes the pages of tasks that stopped (forgetting their state) and pages idle for
        ``idle_s``; closes Chromium when no page is left. Returns how many pages closed."""
        closed = 0
        now = time.monotonic()
        for task_id in await anyio.to_thread.run_sync(self._stored_tasks):
            if stopped is not None and await stopped(task_id):
                await self.forget(task_id)
                closed += 1
        for session in list(self._live.values()):
            lock = self._locks.get(session.task_id)
            if now - session.used >= self.idle_s and not (lock and lock.locked()):
                await self._close(session)
                closed += 1
        if not self._live and not self._opening and self._browser is not None:
            await self.close()
        return closed

    async def close(self) -> None:
        """Closes every page, Chromium and the proxy (the stored states stay)."""
        for session in list(self._live.values()):
            await self._close(session)
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            with contextlib.suppress(PlaywrightError, OSError):
                await self._playwright.stop()
            self._playwright = None
        await self.egress.close()

    # --- the stored state ----------------------------------------------------------------------

    def _stored_tasks(self) -> list[str]:
        workspaces = self.data_dir / "workspaces"
        hidden = browser_folder(self.data_dir, "-").name
        found = {path.parent.name for path in workspaces.glob(f"*/{hidden}")}
        return sorted(found | set(self._live))

    def _read_state(self, task_id: str) -> dict[str, Any] | None:
        try:
            stored = json.loads((self.folder(task_id) / _STATE).read_bytes())
        except (OSError, ValueError):
            return None
        return stored if isinstance(stored, dict) else None

    def _open_state(self, task_id: str, stored: dict[str, Any]) -> dict[str, Any]:
        sealed = stored.get("sealed")
        if sealed is None:
            return stored
        if self.state_key is None:
            return {}
        try:
            return open_secret(self.state_key, sealed, f"browser\n{task_id}")
        except VaultError:
            log.warning("browser.state_unreadable", task_id=task_id)
            return {}

    async def store(self, session: Session) -> bytes | None:
        """Stores the page's state and screenshot (done after every action); returns the
        screenshot (``None``: the page could not be read)."""
        session.stored = True
        try:
            storage = await session.context.storage_state()
            screen = await session.page.screenshot(type="png")
        except PlaywrightError as exc:
            log.warning("browser.not_stored", task_id=session.task_id, error=str(exc)[:200])
            return None
        session.generation += 1
        state: dict[str, Any] = {"url": session.page.url, "storage": storage}
        envelope: dict[str, Any] = {"generation": session.generation}
        if self.state_key is not None:
            envelope["sealed"] = seal_secret(self.state_key, state, f"browser\n{session.task_id}")
        else:
            envelope.update(state)
        folder = self.folder(session.task_id)

        def write() -> None:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            shown = screen_path(self.data_dir, session.task_id).name
            for name, data in ((shown, screen), (_STATE, json.dumps(envelope).encode())):
                partial = folder / f".{name}.part"
                descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
                partial.replace(folder / name)

        await anyio.to_thread.run_sync(write)
        return screen

    def screen(self, task_id: str) -> bytes | None:
        """The page's latest screenshot, as stored."""
        try:
            return screen_path(self.data_dir, task_id).read_bytes()
        except OSError:
            return None
