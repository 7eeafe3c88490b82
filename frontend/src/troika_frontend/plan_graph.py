"""A plan drawn as a dependency graph: subtasks as boxes in rows (each after the ones it waits
for), arrows from a subtask to those that wait for it, colours for their states.

Pure: an SVG document as text, every text in it escaped, for the page to show inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from troika_frontend.views import Step

__all__ = ["depths", "plan_svg"]

_WIDTH, _HEIGHT, _GAP_X, _GAP_Y, _MARGIN = 190, 46, 24, 44, 8
_LETTERS = 24  # a title longer than this is cut in the box (the whole one is its tooltip)
_FILL = {
    "pending": ("#f0f0f3", "#8b8d98"),
    "running": ("#e1f8fa", "#00a2c7"),
    "done": ("#e6f6eb", "#30a46c"),
    "paused": ("#fff7c2", "#ab6400"),
    "cancelled": ("#f0f0f3", "#60646c"),
    "stopped": ("#feebec", "#e5484d"),
}


def depths(edges: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each subtask's row: 0 for one that waits for nothing, else one below the deepest of the
    subtasks it waits for (an unknown name or a circle counts as nothing to wait for)."""
    found: dict[str, int] = {}

    def depth(key: str, seen: frozenset[str]) -> int:
        if key in found:
            return found[key]
        before = [d for d in edges.get(key, ()) if d in edges and d not in seen]
        found[key] = 1 + max((depth(d, seen | {key}) for d in before), default=-1)
        return found[key]

    for key in edges:
        depth(key, frozenset())
    return found


def _short(text: str) -> str:
    return text if len(text) <= _LETTERS else text[: _LETTERS - 1].rstrip() + "…"


def plan_svg(steps: Sequence[Step]) -> str:
    """The plan as an SVG picture ("" for a plan with no subtask)."""
    if not steps:
        return ""
    edges = {s.key: [d.strip() for d in s.depends_on.split(",") if d.strip()] for s in steps}
    row_of = depths(edges)
    rows: dict[int, list[Step]] = {}
    for step in steps:
        rows.setdefault(row_of[step.key], []).append(step)
    widest = max(len(row) for row in rows.values())
    width = widest * (_WIDTH + _GAP_X) - _GAP_X + 2 * _MARGIN
    height = len(rows) * (_HEIGHT + _GAP_Y) - _GAP_Y + 2 * _MARGIN
    where: dict[str, tuple[float, float]] = {}
    for depth, row in rows.items():
        start = (width - (len(row) * (_WIDTH + _GAP_X) - _GAP_X)) / 2
        for n, step in enumerate(row):
            where[step.key] = (start + n * (_WIDTH + _GAP_X), _MARGIN + depth * (_HEIGHT + _GAP_Y))
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
            f'width="100%" style="max-width:{width:g}px" role="img" '
            'aria-label="The plan as a graph: each subtask below the ones it waits for">'
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8b8d98"/>'
            "</marker></defs>"
        ),
    ]
    for step in steps:
        x, y = where[step.key]
        for before in edges[step.key]:
            if before not in where:
                continue
            bx, by = where[before]
            x1, y1, x2, y2 = bx + _WIDTH / 2, by + _HEIGHT, x + _WIDTH / 2, y
            middle = (y1 + y2) / 2
            parts.append(
                f'<path d="M{x1:g},{y1:g} C{x1:g},{middle:g} {x2:g},{middle:g} {x2:g},{y2 - 2:g}" '
                'fill="none" stroke="#8b8d98" stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
    for step in steps:
        x, y = where[step.key]
        status = step.status.replace(" ", "_")
        fill, stroke = _FILL.get(status, _FILL["pending"])
        parts.append(
            f'<g class="plan-node" data-key={quoteattr(step.key)} data-status={quoteattr(status)}>'
            f"<title>{escape(step.title)} ({escape(step.status)})</title>"
            f'<rect x="{x:g}" y="{y:g}" width="{_WIDTH}" height="{_HEIGHT}" rx="8" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
            f'<text x="{x + 10:g}" y="{y + 19:g}" font-size="13" font-weight="600" '
            f'fill="#1c2024">{escape(_short(step.title))}</text>'
            f'<text x="{x + 10:g}" y="{y + 36:g}" font-size="11" fill="{stroke}">'
            f"{escape(step.status)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
