"""A task's timeline: each event of its log as one entry a person reads, made from the
gateway's JSON (plain data, no Reflex in here; agent text stays text)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from troika_frontend.views import json_text, label, sentence, status_color, took, when
from troika_shared.unusable import in_words

__all__ = [
    "AGENTS",
    "TimelineGroup",
    "TimelineItem",
    "group_timeline",
    "timeline_item",
    "took",
]

AGENTS = ("everyone", "you", "planner", "executor", "reviewer", "system")
"""Whose events the timeline can be narrowed to."""

_ROUTINE = frozenset({"plan.requested", "step.requested", "review.requested", "task.status"})
"""Events that only say the work goes on: folded away unless the person asks for every one."""
_NEWS = frozenset({"failed", "awaiting_plan_review"})
"""Statuses only their ``task.status`` event tells of: never folded."""


@dataclass
class TimelineItem:
    """One event of the live timeline; ``subtask`` names the subtask it belongs to ("" for the
    task as a whole), ``times`` how many like it in a row it stands for, ``detail`` the exact
    words behind a plain ``body``, folded away for the curious."""

    seq: int
    kind: str
    who: str
    title: str
    body: str
    at: str
    color: str
    subtask: str = ""
    routine: bool = False
    times: int = 1
    detail: str = ""


@dataclass
class TimelineGroup:
    """A subtask's events together (or one event of the task as a whole), in the order the
    subtask began; ``took`` is how long from its first event to its last, ``size`` how many
    events it shows, in words."""

    key: str
    subtask: str
    title: str
    took: str
    events: list[TimelineItem]
    color: str = "gray"
    size: str = ""


def _merged(items: list[TimelineItem]) -> list[TimelineItem]:
    """Events that say the same thing one after another, as one with how many times."""
    merged: list[TimelineItem] = []
    for item in items:
        last = merged[-1] if merged else None
        if last is not None and (last.kind, last.title, last.body) == (
            item.kind,
            item.title,
            item.body,
        ):
            merged[-1] = replace(last, times=last.times + 1, at=item.at)
        else:
            merged.append(item)
    return merged


def group_timeline(
    items: list[TimelineItem], *, agent: str = "everyone", every: bool = False
) -> list[TimelineGroup]:
    """The timeline as a person reads it: each subtask's events in one group (where the
    subtask began), the task's own events between them; routine ones left out unless
    ``every``; only ``agent``'s unless "everyone"; repeats merged."""
    shown = [
        item
        for item in items
        if (every or not item.routine) and agent in ("everyone", "", item.who)
    ]
    groups: list[TimelineGroup] = []
    of_subtask: dict[str, TimelineGroup] = {}
    for item in shown:
        if not item.subtask:
            groups.append(TimelineGroup(key=f"e{item.seq}", subtask="", title="", took="",
                                        events=[item]))  # fmt: skip
            continue
        group = of_subtask.get(item.subtask)
        if group is None:
            group = TimelineGroup(key=f"s-{item.subtask}", subtask=item.subtask,
                                  title=item.subtask, took="", events=[])  # fmt: skip
            of_subtask[item.subtask] = group
            groups.append(group)
        group.events.append(item)
    spans: dict[str, tuple[str, str]] = {}
    for item in items:  # routine events count: a subtask starts when its first step is asked
        if item.subtask:
            spans[item.subtask] = (spans.get(item.subtask, (item.at, ""))[0], item.at)
    for group in of_subtask.values():
        group.took = took(*spans[group.subtask])
        group.color = group.events[-1].color
        group.events = _merged(group.events)
        count = sum(item.times for item in group.events)
        group.size = f"{count} event" if count == 1 else f"{count} events"
    return groups


def _plan_body(data: dict[str, Any]) -> str:
    lines = [str(data.get("summary", ""))]
    for step in data.get("subtasks", []):
        after = f" (after {', '.join(step['depends_on'])})" if step.get("depends_on") else ""
        lines.append(f"- **{step['id']}**: {step['title']}{after}")
    return "\n".join(lines)


def _fenced(text: str) -> str:
    """Raw output as a code block (a fence longer than any run of backticks inside)."""
    if not text.strip():
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _finished(data: dict[str, Any]) -> tuple[str, str, str]:
    if data.get("ok"):
        return f"{data.get('tool')} done", _fenced(str(data.get("output") or "")), "green"
    return f"{data.get('tool')} failed", _fenced(str(data.get("error") or "")), "red"


def _by(actor: object) -> str:
    text = str(actor or "you")
    return "you" if text.startswith("user:") or text == "you" else text


def _verdict(data: dict[str, Any]) -> tuple[str, str, str]:
    body = str(data.get("summary", ""))
    for revision in data.get("revisions") or []:
        body += f"\n- **{revision.get('subtask')}**: {revision.get('problem')}"
    if data.get("approved"):
        return "Review: approved", body, "green"
    return "Review: sent back for revision", body, "orange"


def timeline_item(event: dict[str, Any]) -> TimelineItem | None:  # noqa: PLR0911, PLR0912 - one branch per kind
    """An event as the timeline shows it; ``None`` for bookkeeping events."""
    kind = str(event["kind"])
    data: dict[str, Any] = event.get("data") or {}
    at = when(str(event.get("at") or event.get("created_at") or ""))
    seq = int(event["seq"])

    subtask = str(data.get("subtask") or "")
    routine = kind in _ROUTINE and str(data.get("status", "")) not in _NEWS

    def item(
        who: str, title: str, body: str = "", color: str = "gray", detail: str = ""
    ) -> TimelineItem:
        return TimelineItem(seq=seq, kind=kind, who=who, title=title, body=body, at=at,
                            color=color, subtask=subtask, routine=routine,
                            detail=detail)  # fmt: skip

    match kind:
        case "task.created":
            return item("you", "Task created", str(data.get("objective") or ""))
        case "plan.requested":
            return item("planner", "Re-planning" if data.get("replan") else "Planning")
        case "plan.ready":
            return item("planner", "Plan ready", _plan_body(data), "cyan")
        case "plan.edited":
            return item("you", "Plan changed", _plan_body(data))
        case "plan.accepted":
            return item("you", "Plan accepted: the work starts", color="green")
        case "step.requested":
            return item("executor", f"Working on {data.get('subtask')} (step {data.get('step')})")
        case "approval.requested":
            what = "needs your details" if data.get("form") else "waits for your approval"
            body = "```json\n" + json_text(data.get("arguments", {})) + "\n```"
            return item("executor", f"{data.get('tool')} {what}", body, "amber")
        case "tool.approved":
            return item(
                "you", f"{data.get('tool')} approved (by {_by(data.get('by'))})", color="green"
            )
        case "tool.denied":
            by = _by(data.get("by"))
            return item(
                "you" if by == "you" else "system",
                f"{data.get('tool')} denied (by {by})",
                str(data.get("reason", "")),
                "red",
            )
        case "tool.finished":
            title, body, color = _finished(data)
            return item("executor", title, body, color)
        case "desktop.waiting":
            return item(
                "system",
                f"{data.get('tool')} waits for your PC {data.get('device')!r} to connect",
                "Start troika-desktop on it; the action runs as soon as it connects.",
                "amber",
            )
        case "tool.repeated":
            return item(
                "executor", f"{data.get('tool')} proposed again ({data.get('times')} times)"
            )
        case "subtask.done":
            return item(
                "executor", f"{data.get('subtask')} done", str(data.get("result", "")), "green"
            )
        case "review.requested":
            return item("reviewer", f"Reviewing (round {data.get('round', 1)})")
        case "review.verdict":
            title, body, color = _verdict(data)
            return item("reviewer", title, body, color)
        case "task.needs_guidance":
            return item("system", "Needs your guidance", str(data.get("reason", "")), "orange")
        case "task.guidance":
            return item("you", "Guidance given", str(data.get("text") or data.get("action", "")))
        case "task.completed":
            return item("system", "Completed", str(data.get("result", "")), "green")
        case "task.status":
            status = str(data.get("status", ""))
            reason = str(data.get("reason") or "")
            return item("system", f"Status: {label(status)}", reason, status_color(status))
        case "approval.expired":
            return item("system", f"The approval for {data.get('tool')} expired", color="red")
        case "agent.unusable_answer":
            reason = str(data.get("reason", ""))
            said = str(data.get("said") or in_words(reason))
            return item(
                str(data.get("agent", "agent")),
                "An answer that could not be used: asked again",
                sentence(said),
                "red",
                detail=reason,
            )
        case "task.scheduled":
            return item("system", "Waits for its schedule", color="blue")
        case "files.uploaded":
            names = ", ".join(str(n) for n in data.get("names") or data.get("files") or [])
            return item("you", "Files attached", names)
        case "schedule.fired":
            late = " (late: " + str(data.get("reason")) + ")" if data.get("late") else ""
            return item("system", "The schedule started this run" + late)
        case "schedule.skipped":
            return item("system", "A scheduled run was skipped", str(data.get("reason", "")))
        case _:
            return item("system", kind.replace(".", " ").replace("_", " "))
