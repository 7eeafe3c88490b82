"""web_search and web_search_news through ddgs, with search engines served on loopback."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from ddgs import ddgs as ddgs_search
from ddgs.base import BaseSearchEngine
from ddgs.engines.mojeek import Mojeek
from ddgs.results import NewsResult

from troika_executor.net import OutboundPolicy
from troika_executor.tools import Toolbox, run_tool

SEEN: list[dict[str, list[str]]] = []


class Engine(BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        SEEN.append(query)
        q = query.get("q", [""])[0]
        if self.path.startswith("/news"):
            items = "".join(
                f'<div class="news"><a href="https://news.example/{n}">{q} headline {n}</a>'
                f'<span class="date">2026-11-2{n}</span><span class="src">Daily {n}</span>'
                f"<p>What happened with {q}, part {n}.</p></div>"
                for n in (1, 2)
            )
        else:
            items = "".join(
                f'<li><h2><a href="https://site{n}.example/{q}">{q} result {n}</a></h2>'
                f'<p class="s">About {q}, snippet {n}.</p></li>'
                for n in (1, 2, 3)
            )
        body = f'<html><body><ul class="results">{items}</ul></body></html>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def engine_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def local_engines(port: int) -> tuple[type, type]:
    class LocalText(Mojeek):
        name = "local"
        search_url = f"http://127.0.0.1:{port}/search"

    class LocalNews(BaseSearchEngine[NewsResult]):
        name = "localnews"
        category = "news"
        provider = "local"
        search_url = f"http://127.0.0.1:{port}/news"
        search_method = "GET"
        items_xpath = "//div[@class='news']"
        elements_xpath: ClassVar[Mapping[str, str]] = {
            "title": ".//a//text()",
            "url": ".//a/@href",
            "date": ".//span[@class='date']//text()",
            "source": ".//span[@class='src']//text()",
            "body": ".//p//text()",
        }

        def build_payload(
            self,
            query: str,
            region: str,
            safesearch: str,  # noqa: ARG002
            timelimit: str | None,
            page: int = 1,  # noqa: ARG002
            **kwargs: Any,  # noqa: ARG002
        ) -> dict[str, Any]:
            return {"q": query, "region": region, "df": timelimit or ""}

    return LocalText, LocalNews


@pytest.fixture
def engines(monkeypatch, engine_port):
    text, news = local_engines(engine_port)
    monkeypatch.setitem(ddgs_search.ENGINES, "text", {"local": text})
    monkeypatch.setitem(ddgs_search.ENGINES, "news", {"localnews": news})
    SEEN.clear()


async def run(tmp_path, tool: str, **arguments):
    return await run_tool(Toolbox(tmp_path, OutboundPolicy()), "task-1", tool, arguments)


async def test_web_search_lists_titles_addresses_and_snippets(tmp_path, engines) -> None:
    result = await run(tmp_path, "web_search", query="tesla", max_results=2)
    assert result.ok, result.error
    assert result.output.splitlines()[:3] == [
        "1. tesla result 1",
        "   https://site1.example/tesla",
        "   About tesla, snippet 1.",
    ]
    assert "3. " not in result.output  # max_results holds
    assert SEEN[0]["q"] == ["tesla"]


async def test_news_search_shows_sources_and_dates(tmp_path, engines) -> None:
    result = await run(tmp_path, "web_search_news", query="tesla", time_limit="w", region="us-en")
    assert result.ok, result.error
    assert "1. tesla headline 1 (Daily 1 · 2026-11-21)" in result.output
    assert "https://news.example/2" in result.output
    assert (SEEN[0]["df"], SEEN[0]["region"]) == (["w"], ["us-en"])


async def test_unreachable_search_is_a_plain_error(tmp_path, monkeypatch) -> None:
    text, _ = local_engines(9)  # nothing listens on port 9
    monkeypatch.setitem(ddgs_search.ENGINES, "text", {"local": text})
    result = await run(tmp_path, "web_search", query="tesla")
    assert result.ok is False
    assert result.error.startswith("web search is unreachable right now")


async def test_bad_search_arguments_are_refused(tmp_path, engines) -> None:
    for arguments in (
        {"query": ""},
        {"query": "x", "region": "Germany"},
        {"query": "x", "time_limit": "decade"},
        {"query": "x", "max_results": 500},
    ):
        result = await run(tmp_path, "web_search", **arguments)
        assert result.error.startswith("invalid arguments"), arguments
    assert SEEN == []
