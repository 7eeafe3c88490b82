"""``read_webpage`` and ``http_request``: outbound HTTP through the guard, with limits.

Bodies are read as a stream and cut at a byte limit; what reaches the agent is cut again at the
call's character limit, with an explicit marker. Page text is extracted with trafilatura (the
main content, without menus and boilerplate).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import anyio.to_thread
import httpx
import trafilatura

from troika_executor.net import Blocked, guarded_client
from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    from troika_executor.net import OutboundPolicy
    from troika_shared.catalogue import HttpRequestArgs, ReadWebpageArgs

__all__ = ["http_request", "read_webpage"]

MAX_BYTES = 5 << 20  # read at most this much of any body
_PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
_SHOWN_HEADERS = ("content-type", "content-length", "location", "etag", "last-modified",
                  "retry-after", "x-ratelimit-remaining")  # fmt: skip
_MAX_LINKS = 60


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated: {len(text) - limit} more characters]"


async def _body(response: httpx.Response) -> tuple[bytes, bool]:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BYTES:
            return b"".join(chunks)[:MAX_BYTES], True
    return b"".join(chunks), False


def _failure(exc: Exception) -> ToolOutcome:
    if isinstance(exc, httpx.ConnectError) and isinstance(exc.__cause__, Blocked):
        return ToolOutcome(ok=False, error=f"refused: {exc.__cause__}")
    if isinstance(exc, httpx.TooManyRedirects):
        return ToolOutcome(ok=False, error="refused: too many redirects")
    if isinstance(exc, httpx.TimeoutException):
        return ToolOutcome(ok=False, error="the server did not answer in time")
    return ToolOutcome(ok=False, error=f"could not fetch it: {exc}")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            self.hrefs.append((self._href, " ".join("".join(self._text).split())))
            self._href = None


def _page(html: str, url: str, with_links: bool) -> tuple[str, str, list[str]]:  # noqa: FBT001 - run_sync passes it positionally
    text = trafilatura.extract(html, url=url, include_links=False, include_comments=False) or ""
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = (metadata.title if metadata and metadata.title else "") or ""
    links: list[str] = []
    if with_links:
        parser = _Links()
        parser.feed(html)
        seen: set[str] = set()
        for href, label in parser.hrefs:
            absolute = urljoin(url, href)
            if urlsplit(absolute).scheme in ("http", "https") and absolute not in seen:
                seen.add(absolute)
                links.append(f"- {label or '(no text)'}: {absolute}")
    return title, text, links[:_MAX_LINKS]


async def read_webpage(args: ReadWebpageArgs, policy: OutboundPolicy) -> ToolOutcome:
    """The page's title, main text and links."""
    try:
        async with (
            guarded_client(policy, timeout=20) as client,
            client.stream(
                "GET", args.url, headers={"Accept": "text/html,application/xhtml+xml,text/plain"}
            ) as response,
        ):
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if response.status_code >= 400:
                return ToolOutcome(ok=False, error=f"the server answered {response.status_code}")
            if kind not in _PAGE_TYPES:
                return ToolOutcome(
                    ok=False, error=f"not a web page: the server sent {kind or 'no type'}"
                )
            raw, cut = await _body(response)
            final_url = str(response.url)
            encoding = response.encoding or "utf-8"
    except httpx.HTTPError as exc:
        return _failure(exc)
    html = raw.decode(encoding, errors="replace")
    links: list[str] = []
    if kind == "text/plain":
        title, text = "", html
    else:
        title, text, links = await anyio.to_thread.run_sync(_page, html, final_url, args.links)
    parts = [f"URL: {final_url}"]
    if title:
        parts.append(f"Title: {title}")
    parts.append(_cut(text.strip() or "(no readable text)", args.max_chars))
    if cut:
        parts.append(f"[the page is longer than {MAX_BYTES} bytes; only the start was read]")
    if links:
        parts.append("Links:\n" + "\n".join(links))
    return ToolOutcome(ok=True, output="\n\n".join(parts))


async def http_request(args: HttpRequestArgs, policy: OutboundPolicy) -> ToolOutcome:
    """The status, the main headers and the body (JSON pretty-printed, text as is)."""
    body: dict[str, object] = {}
    if args.json_body is not None:
        body["json"] = args.json_body
    elif args.form is not None:
        body["data"] = args.form
    try:
        async with (
            guarded_client(policy, timeout=args.timeout_s) as client,
            client.stream(
                args.method,
                args.url,
                headers=args.headers,
                params=args.query,
                **body,  # type: ignore[arg-type]
            ) as response,
        ):
            raw, cut = await _body(response)
            status, reason = response.status_code, response.reason_phrase
            headers = {k: v for k, v in response.headers.items() if k.lower() in _SHOWN_HEADERS}
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            encoding = response.encoding or "utf-8"
    except httpx.HTTPError as exc:
        return _failure(exc)
    if kind.endswith("json"):
        try:
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except ValueError:
            text = raw.decode(encoding, errors="replace")
    elif kind.startswith("text/") or kind.endswith(("xml", "javascript")) or not raw:
        text = raw.decode(encoding, errors="replace")
    else:
        text = f"({len(raw)} bytes of {kind or 'unknown type'}, not shown)"
    lines = [f"HTTP {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("")
    lines.append(_cut(text, args.max_chars))
    if cut:
        lines.append(f"[the body is longer than {MAX_BYTES} bytes; only the start was read]")
    return ToolOutcome(
        ok=status < 400,
        output="\n".join(lines),
        error=None if status < 400 else f"the server answered {status} {reason}",
    )
