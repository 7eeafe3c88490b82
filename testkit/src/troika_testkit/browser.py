"""Real browsers for tests: the system's Chromium and Firefox, driven by Playwright, with
screenshots kept.

Playwright never downloads a browser here (no ``playwright install``): tests drive the Debian
``chromium`` and ``firefox-esr`` packages, which CI installs. Chromium is driven over the Chrome
DevTools protocol; Firefox over WebDriver BiDi, the standard protocol a stock Firefox speaks
(Playwright's ``moz-firefox`` channel), so no patched Firefox is needed. Where a browser is
missing its tests are skipped, except under ``CI=true``, where they fail.

The fixtures (``browser_name``, ``browser``, ``chromium``, ``page``, ``screenshots``) are
registered by the test kit's plugin.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from troika_testkit.pace import scaled
from troika_testkit.page_text import raw_text
from troika_testkit.servers import in_ci

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, ViewportSize

__all__ = [
    "BROWSERS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "FIREFOX",
    "VIEWPORT",
    "Screenshots",
    "launch",
    "launch_chromium",
    "launch_firefox",
    "new_context",
    "readable",
    "require_chromium",
    "require_firefox",
    "shot_folder_name",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",  # tests run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    # nothing but the page under test goes over the network
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
FIREFOX = Path("/usr/bin/firefox-esr")
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
BROWSERS = ("chromium", "firefox")
PLAYWRIGHT_TIMEOUT_MS = 30_000
"""Playwright's default for a launch and for each wait: what a quiet machine needs."""


def _require(path: Path, package: str) -> Path:
    if not path.is_file():
        reason = f"{path} is missing (Debian: apt-get install {package}; CI always has it)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def require_chromium() -> Path:
    """The system's Chromium; skips the calling test where there is none (fails it under CI)."""
    return _require(CHROMIUM, "chromium")


def require_firefox() -> Path:
    """The system's Firefox; skips the calling test where there is none (fails it under CI)."""
    return _require(FIREFOX, "firefox-esr")


async def launch_chromium(playwright: Playwright) -> Browser:
    """Launches the system's Chromium, headless (see :func:`require_chromium`)."""
    return await playwright.chromium.launch(
        executable_path=require_chromium(),
        headless=True,
        args=list(CHROMIUM_ARGS),
        timeout=scaled(PLAYWRIGHT_TIMEOUT_MS),
    )


async def launch_firefox(playwright: Playwright) -> Browser:
    """Launches the system's Firefox, headless, over WebDriver BiDi (see
    :func:`require_firefox`)."""
    return await playwright.firefox.launch(
        channel="moz-firefox",
        executable_path=require_firefox(),
        headless=True,
        timeout=scaled(PLAYWRIGHT_TIMEOUT_MS),
        firefox_user_prefs={
            # nothing but the page under test goes over the network
            "app.update.auto": False,
            "browser.safebrowsing.downloads.remote.enabled": False,
            "datareporting.policy.dataSubmissionEnabled": False,
            "network.captive-portal-service.enabled": False,
            "network.connectivity-service.enabled": False,
        },
    )


async def launch(playwright: Playwright, name: str) -> Browser:
    """Launches the system's browser called ``name``, one of :data:`BROWSERS`."""
    if name == "chromium":
        return await launch_chromium(playwright)
    if name == "firefox":
        return await launch_firefox(playwright)
    message = f"unknown browser {name!r}; the test kit drives {', '.join(BROWSERS)}"
    raise ValueError(message)


async def new_context(
    browser: Browser,
    **options: Any,  # noqa: ANN401 - Playwright's own options, passed on as they are
) -> BrowserContext:
    """A new context of ``browser`` (``options`` as Playwright's ``new_context`` takes them) whose
    waits without a timeout of their own last Playwright's 30 s times the machine's slowness
    (:mod:`troika_testkit.pace`)."""
    context = await browser.new_context(**options)
    context.set_default_timeout(scaled(PLAYWRIGHT_TIMEOUT_MS))
    return context


def shot_folder_name(text: str) -> str:
    """A test's name or a screenshot's label as it appears in the screenshots' file names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "shot"


async def readable(page: Page, what: str) -> None:
    """Checks that the page says nothing a person should not read (:func:`raw_text`).

    Raises:
        AssertionError: The page shows raw validation text, a Python repr or an identifier.
    """
    if found := raw_text(await page.inner_text("body")):
        raise AssertionError(f"{what} shows what is not for people: {found}")


class Screenshots:
    """One test's full-page screenshots, numbered in the order taken.

    They go to ``var/screenshots/<test name>/<NN>-<label>.png`` under the repository root, so a
    person can page through what the test saw. The folder is emptied when the test starts, so it
    never mixes two runs.

    Args:
        folder: Where this test's screenshots go.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []

    @classmethod
    def for_test(cls, root: Path, test_name: str) -> Screenshots:
        """The screenshots of the test ``test_name``, under ``root/var/screenshots/``."""
        folder = root / "var" / "screenshots" / shot_folder_name(test_name)
        shutil.rmtree(folder, ignore_errors=True)
        return cls(folder)

    async def shot(self, page: Page, label: str) -> Path:
        """Saves the whole page (not only what the viewport shows) and returns the file, and
        checks that the page says nothing a person should not read (:func:`raw_text`).

        The picture is a record: when a busy browser cannot draw the whole page in time, what
        the viewport shows is kept instead, and the test goes on.

        Raises:
            AssertionError: The page shows raw validation text, a Python repr or an identifier.
        """
        from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{len(self.taken) + 1:02d}-{shot_folder_name(label)}.png"
        # From the top, as a person opening the page sees it: the side navigation sticks to
        # the viewport, so a page scrolled down would draw it in the middle of the picture.
        scrolled = await page.evaluate("[window.scrollX, window.scrollY]")
        await page.evaluate("window.scrollTo(0, 0)")
        try:
            await page.screenshot(path=path, full_page=True, timeout=scaled(30_000))
        except PlaywrightTimeout:
            await page.screenshot(path=path, timeout=scaled(30_000))
        await page.evaluate("([x, y]) => window.scrollTo(x, y)", scrolled)
        self.taken.append(path)
        await readable(page, path.name)
        return path
