"""The browser fixtures: the system's Chromium and Firefox open a real page, and screenshots are
kept."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from troika_testkit import browser
from troika_testkit.browser import BROWSERS, Screenshots

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.async_api import Page

# browsers: one at a time with the end-to-end tests, never beside them (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("stack")

PAGE = b"""<!doctype html>
<html><head><title>Probe</title></head>
<body style="margin:0">
  <h1 id="greeting">Hello from the probe page</h1>
  <div style="height:2000px;background:linear-gradient(#fff,#36c)">a tall page</div>
</body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture
def probe_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("browser_name", BROWSERS)
async def test_the_page_opens_a_real_page_and_screenshots_are_kept(
    browser_name: str,
    page: Page,
    screenshots: Screenshots,
    probe_url: str,
    pytestconfig: pytest.Config,
) -> None:
    await page.goto(probe_url)
    agent = await page.evaluate("navigator.userAgent")
    assert ("Firefox/" in agent) == (browser_name == "firefox"), agent
    assert await page.title() == "Probe"
    assert await page.inner_text("#greeting") == "Hello from the probe page"
    assert page.viewport_size == {"width": 1280, "height": 900}

    first = await screenshots.shot(page, "opened")
    second = await screenshots.shot(page, "the same, again!")

    folder = pytestconfig.rootpath / "var" / "screenshots"
    folder /= f"test_the_page_opens_a_real_page_and_screenshots_are_kept-{browser_name}"
    assert first == folder / "01-opened.png"
    assert second == folder / "02-the-same-again.png"
    png = first.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert 1280 - 20 <= width <= 1280  # the viewport, less a scrollbar where one is drawn
    assert height > 2000  # the whole page, not only the 900 pixels of the viewport


def test_screenshots_of_an_earlier_run_are_cleared(tmp_path) -> None:
    stale = tmp_path / "var" / "screenshots" / "test_x-a-b" / "01-old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    shots = Screenshots.for_test(tmp_path, "test_x[a b]")
    assert shots.folder == stale.parent
    assert not stale.exists()


@pytest.mark.parametrize(
    ("path", "package", "require"),
    [("CHROMIUM", "chromium", "require_chromium"), ("FIREFOX", "firefox-esr", "require_firefox")],
)
def test_a_missing_browser_skips_the_test_but_fails_it_under_ci(
    monkeypatch, tmp_path, path: str, package: str, require: str
) -> None:
    monkeypatch.setattr(browser, path, tmp_path / package)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"apt-get install {package}"):
        getattr(browser, require)()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"apt-get install {package}"):
        getattr(browser, require)()


async def test_an_unknown_browser_is_named_in_the_error() -> None:
    expected = "unknown browser 'lynx'; the test kit drives chromium, firefox"
    with pytest.raises(ValueError, match=expected):
        await browser.launch(None, "lynx")  # type: ignore[arg-type]
