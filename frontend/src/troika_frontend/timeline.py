"""A task's timeline: each event of its log as one entry a person reads, made from the
gateway's JSON (plain data, no Reflex in here; agent text stays text)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from troika_frontend.views import json_text, label, status_color, when

__all__ = ["TimelineItem", "timeline_item"]


@dataclass
class TimelineItem:
    """One event of the live timeline."""

    seq: int
    kind: str
    who: str
    title: str
    body: str
    at: str
    color: str


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

    def item(who: str, title: str, body: str = "", color: str = "gray") -> TimelineItem:
        return TimelineItem(seq=seq, kind=kind, who=who, title=title, body=body, at=at, color=color)

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
            return item(
                str(data.get("agent", "agent")),
                "Unusable answer",
                str(data.get("reason", "")),
                "red",
            )
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
