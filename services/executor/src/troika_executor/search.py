"""``web_search`` and ``web_search_news`` through ddgs (several engines, with fallbacks).

ddgs works synchronously; the search runs in a worker thread so the executor's event loop keeps
serving other calls. When no engine answers, the agent gets one plain sentence saying search is
unreachable, not a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from ddgs import ddgs as ddgs_search
from ddgs.exceptions import DDGSException

from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    from troika_shared.catalogue import WebSearchArgs

__all__ = ["web_search", "web_search_news"]

_TIMEOUT_S = 15


def _search(category: str, args: WebSearchArgs, backend: str) -> list[dict[str, Any]]:
    engine = ddgs_search.DDGS(timeout=_TIMEOUT_S)
    search = engine.news if category == "news" else engine.text
    return search(
        args.query,
        region=args.region,
        safesearch="moderate",
        timelimit=args.time_limit,
        max_results=args.max_results,
        backend=backend,
    )


async def _run(category: str, args: WebSearchArgs, backend: str) -> ToolOutcome:
    try:
        results = await anyio.to_thread.run_sync(_search, category, args, backend)
    except DDGSException as exc:
        reason = str(exc).strip() or type(exc).__name__
        return ToolOutcome(ok=False, error=f"web search is unreachable right now ({reason})")
    if not results:
        return ToolOutcome(ok=True, output=f"no results for {args.query!r}")
    lines = []
    for n, item in enumerate(results, 1):
        url = item.get("href") or item.get("url") or ""
        heading = f"{n}. {item.get('title', '').strip()}"
        if category == "news":
            when = " · ".join(x for x in (item.get("source", ""), item.get("date", "")) if x)
            heading += f" ({when})" if when else ""
        lines.append(f"{heading}\n   {url}\n   {item.get('body', '').strip()}")
    return ToolOutcome(ok=True, output="\n".join(lines))


async def web_search(args: WebSearchArgs, backend: str = "auto") -> ToolOutcome:
    """The web's results for the query."""
    return await _run("text", args, backend)


async def web_search_news(args: WebSearchArgs, backend: str = "auto") -> ToolOutcome:
    """Recent news for the query."""
    return await _run("news", args, backend)
