"""The dashboard's state: the form that starts a task (files, schedule, budget), and the
lists of tasks, kept current by the live events."""

from __future__ import annotations

import asyncio
import json
import zoneinfo
from typing import Any

import reflex as rx

from troika_client import ApiError, field_errors
from troika_frontend.repeat import RepeatError, to_cron
from troika_frontend.session import SessionState, listen
from troika_frontend.views import ACTIVE, FINAL, WAITING, TaskItem, repeats_of, task_item_of

__all__ = ["MAX_STAGED_BYTES", "ZONES", "DashboardState"]

MAX_STAGED_BYTES = 100 << 20
ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})
_LIST_KINDS = frozenset(
    {"task.status", "task.created", "task.scheduled", "task.completed", "live.connected"}
)
_SHOWN_ERRORS = frozenset(
    {
        "objective",
        "run_at",
        "cron",
        "timezone",
        "max_steps",
        "max_tokens",
        "max_cost",
        "budget.max_steps",
        "budget.max_tokens",
        "budget.max_cost_usd",
    }
)
_EDITABLE = frozenset(
    {
        "objective",
        "title",
        "when",
        "date",
        "time",
        "timezone",
        "max_steps",
        "max_tokens",
        "max_cost",
    }
)


class DashboardState(SessionState):
    """The new-task form and the task lists."""

    objective: str = ""
    title: str = ""
    when: str = "now"
    date: str = ""
    time: str = ""
    timezone: str = "UTC"
    repeat_words: str = ""
    repeat_cron: str = ""
    repeat_error: str = ""
    max_steps: str = ""
    max_tokens: str = ""
    max_cost: str = ""
    review_plan: bool = False
    review_plan_touched: bool = False
    staged: list[str] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    errors: dict[str, str] = {}  # noqa: RUF012
    busy: bool = False
    working: list[TaskItem] = []  # noqa: RUF012
    waiting: list[TaskItem] = []  # noqa: RUF012
    scheduled: list[TaskItem] = []  # noqa: RUF012
    recent: list[TaskItem] = []  # noqa: RUF012
    loaded: bool = False
    _files: list[tuple[str, bytes, str]] = []  # noqa: RUF012

    @rx.var
    def first_run(self) -> bool:
        """Whether the person has no task at all yet (the dashboard then shows examples)."""
        lists = (self.waiting, self.working, self.scheduled, self.recent)
        return self.loaded and not any(lists)

    @rx.event
    def set_field(self, name: str, value: str) -> None:
        """Keeps what the person typed in one of the form's fields."""
        if name in _EDITABLE:
            setattr(self, name, value)
            self.errors = {key: text for key, text in self.errors.items() if key != name}

    @rx.event
    def set_review_plan(self, checked: bool) -> None:  # noqa: FBT001 - a checkbox
        """This task's plan waits for the person's review (or not), whatever the profile says."""
        self.review_plan = bool(checked)
        self.review_plan_touched = True

    @rx.event
    def set_repeat(self, words: str) -> None:
        """Reads the repeating schedule's words as they are typed."""
        self.repeat_words = words
        self.repeat_cron, self.repeat_error = "", ""
        if words.strip():
            try:
                self.repeat_cron = to_cron(words)
            except RepeatError as exc:
                self.repeat_error = str(exc)

    @rx.event
    def set_browser_zone(self, zone: str) -> None:
        """The browser's time zone is the form's default."""
        if zone in ZONES and self.timezone == "UTC":
            self.timezone = zone

    @rx.event
    async def stage(self, files: list[rx.UploadFile]) -> Any:  # noqa: ANN401 - Reflex event specs
        """Keeps dropped files until the task is created."""
        total = sum(len(data) for _, data, _ in self._files)
        for upload in files:
            data = await upload.read()
            name = (upload.name or "file").rsplit("/", 1)[-1]
            total += len(data)
            if total > MAX_STAGED_BYTES:
                self.staged = [name for name, _, _ in self._files]
                return rx.toast.error("That is more than 100 MB of files for one task.")
            self._files = [f for f in self._files if f[0] != name]
            self._files.append((name, data, upload.content_type or "application/octet-stream"))
        self.staged = [name for name, _, _ in self._files]
        return None

    @rx.event
    def unstage(self, name: str) -> None:
        """Removes a dropped file before the task is created."""
        self._files = [f for f in self._files if f[0] != name]
        self.staged = [name for name, _, _ in self._files]

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401
        """Fills the lists; the form takes the browser's time zone."""
        if not self.access_token:
            return None
        try:
            await self._reload()
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.call_script(
            "Intl.DateTimeFormat().resolvedOptions().timeZone",
            callback=DashboardState.set_browser_zone,
        )

    async def _list(self, statuses: frozenset[str], limit: int = 100) -> list[dict[str, Any]]:
        params = [("limit", limit), *(("status", status) for status in sorted(statuses))]
        page = await self._api("GET", "/tasks", params=params)
        items: list[dict[str, Any]] = page["items"]
        return items

    async def _reload(self) -> None:
        """Reads each list's tasks, and the next run of each schedule (all at once)."""
        me, schedules, working, waiting, scheduled, recent = await asyncio.gather(
            self._api("GET", "/auth/profile"),
            self._api("GET", "/schedules"),
            self._list(ACTIVE),
            self._list(WAITING),
            self._list(frozenset({"scheduled"})),
            self._list(FINAL, limit=8),
        )
        upcoming = {
            s["next_task_id"]: (s.get("next_run_at") or "", repeats_of(s))
            for s in schedules
            if s.get("next_task_id")
        }
        self.working = [task_item_of(t) for t in working]
        self.waiting = [task_item_of(t) for t in waiting]
        self.scheduled = sorted(
            (task_item_of(t, *upcoming.get(t["id"], ("", ""))) for t in scheduled),
            key=lambda t: t.next_run_at or "~",
        )
        self.recent = [task_item_of(t) for t in recent]
        if not self.review_plan_touched:  # the profile's choice, until the person picks here
            self.review_plan = bool(me.get("review_plans"))
        self.loaded = True

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"objective": self.objective.strip()}
        if self.title.strip():
            body["title"] = self.title.strip()
        budget: dict[str, Any] = {}
        for name, key, kind in (
            ("max_steps", "max_steps", int),
            ("max_tokens", "max_tokens", int),
            ("max_cost", "max_cost_usd", float),
        ):
            text = getattr(self, name).strip()
            if text:
                try:
                    budget[key] = kind(text)
                except ValueError:
                    self.errors = {**self.errors, name: "must be a number"}
        if budget:
            body["budget"] = budget
        if self.when == "now":
            body["review_plan"] = self.review_plan
        if self.when == "once":
            if not self.date or not self.time:
                self.errors = {**self.errors, "run_at": "choose a date and a time"}
            else:
                seconds = "" if self.time.count(":") == 2 else ":00"  # a browser may omit them
                body["run_at"] = f"{self.date}T{self.time}{seconds}"
                body["timezone"] = self.timezone
        elif self.when == "repeat":
            if not self.repeat_cron:
                self.errors = {**self.errors, "cron": self.repeat_error or "describe how often"}
            body["cron"] = self.repeat_cron
            body["timezone"] = self.timezone
        return body

    @rx.event
    async def create(self) -> Any:  # noqa: ANN401
        """Creates the task with the dropped files, and opens it."""
        self.errors = {}
        if not self.objective.strip():
            self.errors = {"objective": "say what you want done"}
            return
        body = self._body()
        if self.errors:
            return
        self.busy = True
        yield
        try:
            if self._files:  # in one request: the plan knows the files from the start
                task = await self._api(
                    "POST",
                    "/tasks/with-files",
                    data={"task": json.dumps(body)},
                    files=[("files", item) for item in self._files],
                )
            else:
                task = await self._api("POST", "/tasks", json=body)
        except ApiError as exc:
            self.busy = False
            found = field_errors(exc.errors)
            if not found or not set(found) <= _SHOWN_ERRORS:
                found["form"] = exc.message  # a problem no field of the form shows
            self.errors = found
            return
        self.busy = False
        self.objective = self.title = self.repeat_words = self.repeat_cron = ""
        self.max_steps = self.max_tokens = self.max_cost = ""
        self.when = "now"
        self.review_plan_touched = False
        self._files, self.staged = [], []
        yield rx.redirect(f"/tasks/{task['id']}")


@listen
async def _on_event(session: SessionState, event: dict[str, Any]) -> None:
    if event["kind"] not in _LIST_KINDS:
        return
    state = await session.get_state(DashboardState)
    if state.router.url.path in ("/", ""):
        await state._reload()
