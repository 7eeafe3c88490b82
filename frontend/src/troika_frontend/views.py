"""What the pages show, made from the gateway's JSON: plain data, no Reflex in here.

Every text that came from an agent, a tool or a web page stays text: the pages render it as
escaped Markdown, never as HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ACTIVE",
    "FINAL",
    "WAITING",
    "FileItem",
    "ScheduleItem",
    "Step",
    "TaskItem",
    "json_text",
    "label",
    "reason_of",
    "repeats_of",
    "schedule_of",
    "sentence",
    "status_color",
    "task_item_of",
    "took",
    "when",
    "within_a_day",
]

FINAL = frozenset({"completed", "failed", "cancelled"})
WAITING = frozenset(
    {"awaiting_plan_review", "awaiting_approval", "awaiting_input", "needs_guidance"}
)
ACTIVE = frozenset({"queued", "planning", "executing", "reviewing"})

_COLORS = {
    "scheduled": "blue",
    "queued": "gray",
    "planning": "cyan",
    "executing": "cyan",
    "reviewing": "cyan",
    "awaiting_plan_review": "amber",
    "awaiting_approval": "amber",
    "awaiting_input": "amber",
    "needs_guidance": "orange",
    "completed": "green",
    "failed": "red",
    "cancelled": "gray",
    "pending": "gray",
    "running": "cyan",
    "done": "green",
    "active": "green",
    "paused": "amber",
    "ended": "gray",
    "stopped": "red",
}


def status_color(status: str) -> str:
    """The badge colour of a status."""
    return _COLORS.get(status, "gray")


def label(status: str) -> str:
    """A status as words: ``awaiting_approval`` → ``awaiting approval``."""
    return status.replace("_", " ")


def sentence(text: str) -> str:
    """Words as a sentence of their own: "is required" → "Is required." (shown under a field)."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else f"{text}."


def json_text(value: object) -> str:
    """A value as indented JSON, for people."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def when(value: str | None) -> str:
    """A time from the API as ISO 8601 with its offset (``""`` when there is none): the pages
    show it in the browser's own time zone (``components.when``)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return ""
    if moment.tzinfo is None:  # the API always sends an offset; a bare time is UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


@dataclass
class TaskItem:
    """A row of the task lists."""

    id: str
    title: str
    objective: str
    status: str
    status_label: str
    color: str
    reason: str
    created: str
    updated: str
    schedule_id: str
    next_run_at: str = ""
    soon: bool = False
    final: bool = False
    waiting: bool = False
    repeats: str = ""
    took: str = ""
    cost: str = ""


def within_a_day(moment: str) -> bool:
    """Whether an ISO time is less than a day away (or past)."""
    try:
        due = datetime.fromisoformat(moment)
    except ValueError:
        return False
    return (due - datetime.now(UTC)).total_seconds() < 86_400


def reason_of(task: dict[str, Any]) -> str:
    """Why the task is where it is, for people: a scheduled task's reason is the start time
    as the API gives it (ISO), which the pages show on the person's own clock instead."""
    return "" if task.get("status") == "scheduled" else str(task.get("status_reason") or "")


def took(first: str, last: str) -> str:
    """How long from ``first`` to ``last`` (ISO times) in words: "45 s", "3 min 5 s"."""
    try:
        seconds = int(
            (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
        )
    except ValueError:
        return ""
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def task_item_of(task: dict[str, Any], next_run_at: str = "", repeats: str = "") -> TaskItem:
    """A task summary as a list row (``next_run_at``: when a scheduled one starts; ``repeats``:
    its schedule's rule in words, when it repeats)."""
    status = str(task["status"])
    return TaskItem(
        id=str(task["id"]),
        title=str(task.get("title") or task.get("objective", ""))[:200],
        objective=str(task.get("objective", "")),
        status=status,
        status_label=label(status),
        color=status_color(status),
        reason=reason_of(task),
        created=when(task.get("created_at")),
        updated=when(task.get("updated_at")),
        schedule_id=str(task.get("schedule_id") or ""),
        next_run_at=next_run_at,
        soon=bool(next_run_at) and within_a_day(next_run_at),
        final=status in FINAL,
        waiting=status in WAITING,
        repeats=repeats,
        took=took(str(task.get("started_at") or ""), str(task.get("finished_at") or "")),
        cost=f"${float(task['cost_usd']):.4f}" if "cost_usd" in task else "",
    )


@dataclass
class Step:
    """A subtask of the plan."""

    key: str
    title: str
    description: str
    depends_on: str
    status: str
    color: str
    result: str
    tools: str
    spent: str = ""  # what its model calls cost ("" before the first)


_STOPPED_SUBTASKS = {"needs_guidance": "paused", "cancelled": "cancelled", "failed": "stopped"}
"""What an unfinished subtask of a task that stopped or waits for guidance is shown as."""


def step_of(subtask: dict[str, Any], task_status: str = "") -> Step:
    """A subtask as a row of the plan; one not done of a task that stopped (or waits for the
    person's guidance) says so, rather than "running"."""
    status = str(subtask.get("status", "pending"))
    if status in ("pending", "running") and task_status in _STOPPED_SUBTASKS:
        status = _STOPPED_SUBTASKS[task_status]
    return Step(
        key=str(subtask["key"]),
        title=str(subtask.get("title", "")),
        description=str(subtask.get("description", "")),
        depends_on=", ".join(subtask.get("depends_on") or []),
        status=label(status),
        color=status_color(status),
        result=str(subtask.get("result") or ""),
        tools=", ".join(subtask.get("tool_hints") or []),
        spent=spent_on(subtask.get("cost") or {}),
    )


def spent_on(cost: dict[str, Any]) -> str:
    """What model calls cost, in words: ``$0.0012 · 2 model calls`` ("" when none)."""
    calls = int(cost.get("calls") or 0)
    if not calls:
        return ""
    tokens = int(cost.get("prompt_tokens") or 0) + int(cost.get("completion_tokens") or 0)
    return (
        f"${float(cost.get('cost_usd') or 0.0):.4f} · {calls} model call{'s' * (calls != 1)}"
        f" · {tokens:,} tokens"
    )


@dataclass
class FileItem:
    """A file of a task."""

    name: str
    size: str
    origin: str
    content_type: str


def _size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def file_of(item: dict[str, Any]) -> FileItem:
    """A file as a row."""
    return FileItem(
        name=str(item["name"]),
        size=_size(int(item.get("size", 0))),
        origin=str(item.get("origin", "")),
        content_type=str(item.get("content_type", "")),
    )


@dataclass
class ScheduleItem:
    """A row of the schedules page."""

    id: str
    title: str
    kind: str
    status: str
    color: str
    description: str
    cron: str
    timezone: str
    next_run_at: str
    next_run: str
    soon: bool
    runs: int
    last_run: str
    task_id: str
    repeating: bool
    last_task_id: str = ""
    runs_words: str = ""


def repeats_of(schedule: dict[str, Any]) -> str:
    """A repeating schedule's rule in words with its zone ("Every day at 08:00, Europe/Paris");
    "" for a schedule that runs once."""
    if schedule.get("kind") != "repeating":
        return ""
    return f"{schedule.get('description', '')}, {schedule.get('timezone', 'UTC')}"


def schedule_of(schedule: dict[str, Any]) -> ScheduleItem:
    """A schedule as a row."""
    status = str(schedule.get("status", ""))
    last = schedule.get("last_run") or {}
    return ScheduleItem(
        id=str(schedule["id"]),
        title=str(schedule.get("title") or schedule.get("objective") or "")[:200],
        kind=str(schedule.get("kind", "")),
        status=status,
        color=status_color(status),
        description=str(schedule.get("description") or ""),
        cron=str(schedule.get("cron") or ""),
        timezone=str(schedule.get("timezone") or ""),
        next_run_at=str(schedule.get("next_run_at") or ""),
        next_run=when(schedule.get("next_run_at")),
        soon=bool(schedule.get("next_run_at")) and within_a_day(str(schedule["next_run_at"])),
        runs=int(schedule.get("runs") or 0),
        last_run=when(last.get("fired_at") if isinstance(last, dict) else None),
        task_id=str(schedule.get("next_task_id") or ""),
        repeating=str(schedule.get("kind", "")) == "repeating",
        last_task_id=str(last.get("task_id") or "") if isinstance(last, dict) else "",
        runs_words=_runs(int(schedule.get("runs") or 0)),
    )


def _runs(count: int) -> str:
    return "1 run" if count == 1 else f"{count} runs"


_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}


def limits_body(texts: dict[str, str]) -> dict[str, float | int | None] | str:
    """The person's own limits as typed (``daily``, ``monthly`` in dollars; ``daily_tokens``,
    ``monthly_tokens`` in tokens, ``250k`` and ``2,000,000`` read as numbers; empty: no
    limit), as ``PUT /auth/profile`` takes them, or what is wrong in words."""
    body: dict[str, float | int | None] = {}
    for period in ("daily", "monthly"):
        text = texts.get(period, "").strip().lstrip("$").replace(",", "")
        try:
            amount = float(text) if text else None
        except ValueError:
            return f"The {period} limit must be an amount in dollars, like 5."
        if amount is not None and amount <= 0:
            return f"The {period} limit must be more than nothing."
        body[f"{period}_budget_usd"] = amount
    for period in ("daily", "monthly"):
        text = texts.get(f"{period}_tokens", "").strip().lower().replace(",", "").replace(" ", "")
        if not text:
            body[f"{period}_budget_tokens"] = None
            continue
        number, scale = (text[:-1], text[-1]) if text[-1] in "km" else (text, "")
        try:
            tokens = round(float(number) * _SCALE[scale])
        except ValueError:
            return f"The {period} token limit must be a number of tokens, like 200000 or 200k."
        if tokens < 1:
            return f"The {period} token limit must be at least one token."
        body[f"{period}_budget_tokens"] = tokens
    return body
