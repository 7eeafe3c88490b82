"""read_webpage and http_request against real HTTP servers on loopback, and the SSRF guard."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from troika_executor.net import OutboundPolicy
from troika_executor.tools import Toolbox, run_tool

ARTICLE = """<!doctype html><html><head><title>Quarterly sales up 12%</title></head><body>
<nav><a href="/home">Home</a> <a href="/about">About us</a></nav>
<article><h1>Quarterly sales up 12%</h1>
<p>Sales in the North region rose by twelve percent in the third quarter, driven by apples.</p>
<p>The South region held steady, while the East region doubled its pear volume compared with
last year. Analysts expect the trend to continue into the next quarter as demand grows.</p>
<p>Read the <a href="https://example.org/report.pdf">full report</a> for details.</p>
</article><footer>Cookie settings | Privacy</footer></body></html>"""


class Handler(BaseHTTPRequestHandler):
    secret_port = 0

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, kind: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/article":
            self._send(200, "text/html; charset=utf-8", ARTICLE.encode())
        elif self.path.startswith("/api"):
            echo = {
                "method": self.command,
                "path": self.path,
                "body": body.decode(),
                "content_type": self.headers.get("Content-Type"),
                "token": self.headers.get("X-Token"),
            }
            self._send(201, "application/json", json.dumps(echo).encode(), ETag='"v1"')
        elif self.path == "/missing":
            self._send(404, "application/json", b'{"error": "no such thing"}')
        elif self.path == "/image":
            self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        elif self.path == "/long":
            self._send(200, "text/plain", b"word " * 10_000)
        elif self.path == "/to-secret":
            self._send(302, "text/plain", b"", Location=f"http://127.0.0.1:{self.secret_port}/")
        elif self.path == "/loop":
            self._send(302, "text/plain", b"", Location="/loop")
        else:
            self._send(200, "text/plain", b"secret data")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers():
    public, secret = _serve(), _serve()
    Handler.secret_port = secret.server_address[1]
    yield public.server_address[1], secret.server_address[1]
    public.shutdown()
    secret.shutdown()
    public.server_close()
    secret.server_close()


@pytest.fixture
def allowed(servers) -> OutboundPolicy:
    """Only the first server is allowed, as an operator would list an intranet API."""
    return OutboundPolicy.of([f"127.0.0.1:{servers[0]}"])


async def run(tmp_path, policy, tool: str, **arguments):
    return await run_tool(Toolbox(tmp_path, policy), "task-1", tool, arguments)


async def test_a_page_is_read_as_title_main_text_and_links(tmp_path, servers, allowed) -> None:
    url = f"http://127.0.0.1:{servers[0]}/article"
    page = await run(tmp_path, allowed, "read_webpage", url=url)
    assert page.ok, page.error
    assert "Title: Quarterly sales up 12%" in page.output
    assert "Sales in the North region rose by twelve percent" in page.output
    assert "Cookie settings" not in page.output  # boilerplate left out
    assert f"- About us: http://127.0.0.1:{servers[0]}/about" in page.output
    assert "- full report: https://example.org/report.pdf" in page.output
    short = await run(tmp_path, allowed, "read_webpage", url=url, max_chars=100, links=False)
    assert "[truncated: " in short.output
    assert "Links:" not in short.output


async def test_only_pages_are_read(tmp_path, servers, allowed) -> None:
    image = await run(tmp_path, allowed, "read_webpage", url=f"http://127.0.0.1:{servers[0]}/image")
    assert image.error == "not a web page: the server sent image/png"


async def test_an_api_call_sends_json_and_shows_status_headers_and_body(
    tmp_path, servers, allowed
) -> None:
    result = await run(
        tmp_path,
        allowed,
        "http_request",
        method="POST",
        url=f"http://127.0.0.1:{servers[0]}/api/orders",
        query={"dry": "1"},
        headers={"X-Token": "t0k"},
        json_body={"item": "apples", "qty": 3},
    )
    assert result.ok, result.error
    assert result.output.startswith("HTTP 201 Created\ncontent-type: application/json")
    assert 'etag: "v1"' in result.output
    echoed = json.loads(result.output.split("\n\n", 1)[1])
    assert echoed == {
        "method": "POST",
        "path": "/api/orders?dry=1",
        "body": '{"item":"apples","qty":3}',
        "content_type": "application/json",
        "token": "t0k",
    }
    form = await run(
        tmp_path,
        allowed,
        "http_request",
        method="PUT",
        url=f"http://127.0.0.1:{servers[0]}/api",
        form={"a": "1"},
    )
    assert '"body": "a=1"' in form.output
    missing = await run(
        tmp_path, allowed, "http_request", url=f"http://127.0.0.1:{servers[0]}/missing"
    )
    assert (missing.ok, missing.error) == (False, "the server answered 404 Not Found")
    assert "no such thing" in missing.output  # the body still shows what the API said
    long = await run(
        tmp_path, allowed, "http_request", url=f"http://127.0.0.1:{servers[0]}/long", max_chars=1000
    )
    assert "[truncated: 49000 more characters]" in long.output


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{secret}/",
        "http://localhost:{secret}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/admin",
        "http://[::1]:{secret}/",
        "http://[::ffff:127.0.0.1]:{secret}/",
        "http://0.0.0.0:{secret}/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 for 169.254.169.254
        "http://[2002:7f00:1::]/",  # 6to4 for 127.0.0.1
        "http://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
        "http://[fec0::1]/",  # site-local: deprecated, and still routed inside sites
        "http://192.0.0.9/",  # IETF protocol assignments: never an ordinary web server
        "http://[::ffff:192.0.0.10]/",
    ],
)
async def test_private_addresses_are_refused(tmp_path, servers, url) -> None:
    target = url.format(secret=servers[1])
    for tool in ("read_webpage", "http_request"):
        result = await run(tmp_path, OutboundPolicy(), tool, url=target)
        assert result.ok is False
        assert result.error.startswith("refused: "), result.error
        assert "not a public address" in result.error
        assert "secret data" not in result.output


async def test_a_redirect_to_a_private_address_is_refused(tmp_path, servers, allowed) -> None:
    result = await run(
        tmp_path, allowed, "read_webpage", url=f"http://127.0.0.1:{servers[0]}/to-secret"
    )
    assert result.ok is False
    assert result.error == (
        "refused: 127.0.0.1 leads to 127.0.0.1, which is not a public address; "
        "the tools may not reach it"
    )
    loop = await run(tmp_path, allowed, "http_request", url=f"http://127.0.0.1:{servers[0]}/loop")
    assert loop.error == "refused: too many redirects"


async def test_only_http_addresses_are_accepted(tmp_path, allowed) -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/", "gopher://127.0.0.1/"):
        result = await run(tmp_path, allowed, "read_webpage", url=url)
        assert result.ok is False
        assert result.error.startswith("invalid arguments")


async def test_a_header_that_cannot_be_sent_is_a_plain_error(tmp_path, servers, allowed) -> None:
    url = f"http://127.0.0.1:{servers[0]}/api"
    result = await run(tmp_path, allowed, "http_request", url=url, headers={"X-Name": "Zoë ✓"})
    assert result.ok is False
    assert result.error.startswith("http_request failed: UnicodeEncodeError")
