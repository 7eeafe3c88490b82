"""The dashboard: start a task (with files, a schedule, a budget), and see what is going on."""

from __future__ import annotations

import asyncio
import json
import zoneinfo
from typing import Any

import reflex as rx

from troika_client import ApiError, field_errors
from troika_frontend.components import badge, frame, panel, when
from troika_frontend.repeat import RepeatError, to_cron
from troika_frontend.session import SessionState, listen
from troika_frontend.views import ACTIVE, FINAL, WAITING, TaskItem, task_item_of

__all__ = ["DashboardState", "countdown", "dashboard_page", "task_row"]

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
    staged: list[str] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    errors: dict[str, str] = {}  # noqa: RUF012
    busy: bool = False
    working: list[TaskItem] = []  # noqa: RUF012
    waiting: list[TaskItem] = []  # noqa: RUF012
    scheduled: list[TaskItem] = []  # noqa: RUF012
    recent: list[TaskItem] = []  # noqa: RUF012
    _files: list[tuple[str, bytes, str]] = []  # noqa: RUF012

    @rx.event
    def set_field(self, name: str, value: str) -> None:
        """Keeps what the person typed in one of the form's fields."""
        if name in _EDITABLE:
            setattr(self, name, value)
            self.errors = {key: text for key, text in self.errors.items() if key != name}

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
        schedules, working, waiting, scheduled, recent = await asyncio.gather(
            self._api("GET", "/schedules"),
            self._list(ACTIVE),
            self._list(WAITING),
            self._list(frozenset({"scheduled"})),
            self._list(FINAL, limit=8),
        )
        next_runs = {
            s["next_task_id"]: s.get("next_run_at") or ""
            for s in schedules
            if s.get("next_task_id")
        }
        self.working = [task_item_of(t) for t in working]
        self.waiting = [task_item_of(t) for t in waiting]
        self.scheduled = sorted(
            (task_item_of(t, next_runs.get(t["id"], "")) for t in scheduled),
            key=lambda t: t.next_run_at or "~",
        )
        self.recent = [task_item_of(t) for t in recent]

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
        self._files, self.staged = [], []
        yield rx.redirect(f"/tasks/{task['id']}")


@listen
async def _on_event(session: SessionState, event: dict[str, Any]) -> None:
    if event["kind"] not in _LIST_KINDS:
        return
    state = await session.get_state(DashboardState)
    if state.router.url.path in ("/", ""):
        await state._reload()


def countdown(next_run_at: rx.Var[str], soon: rx.Var[bool]) -> rx.Component:
    """The time left until ``next_run_at`` (an ISO time), ticking every second: to the second
    when it is ``soon`` (within a day), in words ("in 3 days") otherwise."""
    return rx.cond(
        next_run_at != "",
        rx.hstack(
            rx.icon("timer", size=14),
            rx.cond(
                soon,
                rx.moment(
                    date=next_run_at,
                    duration_from_now=True,
                    format="HH:mm:ss",
                    interval=1000,
                    filters=[rx.Var("(s) => String(s).replaceAll('-', '')")],
                    class_name="countdown-exact",
                ),
                rx.moment(date=next_run_at, from_now=True, interval=1000, class_name="countdown"),
            ),
            spacing="1",
            align="center",
            white_space="nowrap",
        ),
    )


def task_row(item: TaskItem) -> rx.Component:
    """A task in a list: status badge, title, and the countdown of a scheduled one."""
    return rx.link(
        rx.hstack(
            badge(item.status_label, item.color, class_name="status"),
            rx.vstack(
                rx.text(item.title, weight="medium", size="3", class_name="title"),
                rx.cond(item.reason != "", rx.text(item.reason, size="1", color_scheme="gray")),
                spacing="0",
                align="start",
            ),
            rx.spacer(),
            rx.cond(
                item.status == "scheduled",
                countdown(item.next_run_at, item.soon),
                rx.text(when(item.updated), size="1", color_scheme="gray"),
            ),
            width="100%",
            align="center",
            padding="0.6em 0.8em",
            border_radius="8px",
            _hover={"background": rx.color("gray", 3)},
        ),
        href="/tasks/" + item.id,
        underline="none",
        color_scheme="gray",
        high_contrast=True,
        class_name="task-row",
        width="100%",
    )


def _list(title: str, items: rx.Var[list[TaskItem]], empty: str, list_id: str) -> rx.Component:
    return panel(
        rx.hstack(
            rx.heading(title, size="4"), badge(items.length().to_string(), "gray"), align="center"
        ),
        rx.cond(
            items.length() > 0,
            rx.vstack(rx.foreach(items, task_row), spacing="1", width="100%"),
            rx.text(empty, color_scheme="gray", size="2"),
        ),
        id=list_id,
    )


def _error(name: str) -> rx.Component:
    return rx.cond(
        DashboardState.errors.contains(name),
        rx.text(
            DashboardState.errors[name], color_scheme="red", size="1", class_name="field-error"
        ),
    )


def _schedule_fields() -> rx.Component:
    zone = rx.select(
        ZONES,
        value=DashboardState.timezone,
        on_change=lambda v: DashboardState.set_field("timezone", v),
        id="timezone",
    )
    return rx.match(
        DashboardState.when,
        (
            "once",
            rx.vstack(
                rx.hstack(
                    rx.input(
                        type="date",
                        value=DashboardState.date,
                        id="run-date",
                        on_change=lambda v: DashboardState.set_field("date", v),
                    ),
                    rx.input(
                        type="time",
                        value=DashboardState.time,
                        id="run-time",
                        step=1,
                        on_change=lambda v: DashboardState.set_field("time", v),
                    ),
                    zone,
                    wrap="wrap",
                ),
                _error("run_at"),
                _error("timezone"),
            ),
        ),
        (
            "repeat",
            rx.vstack(
                rx.hstack(
                    rx.input(
                        value=DashboardState.repeat_words,
                        on_change=DashboardState.set_repeat,
                        placeholder="every weekday at 9:00",
                        id="repeat-words",
                        width="280px",
                    ),
                    zone,
                    wrap="wrap",
                ),
                rx.cond(
                    DashboardState.repeat_cron != "",
                    rx.text(
                        "cron: ",
                        rx.code(DashboardState.repeat_cron, id="repeat-cron"),
                        size="1",
                        color_scheme="gray",
                    ),
                ),
                rx.cond(
                    DashboardState.repeat_error != "",
                    rx.text(DashboardState.repeat_error, size="1", color_scheme="amber"),
                ),
                _error("cron"),
                _error("timezone"),
            ),
        ),
        rx.fragment(),
    )


def _budget() -> rx.Component:
    def field(label: str, name: str, placeholder: str) -> rx.Component:
        return rx.vstack(
            rx.text(label, size="1", color_scheme="gray"),
            rx.input(
                value=getattr(DashboardState, name),
                on_change=lambda v: DashboardState.set_field(name, v),
                placeholder=placeholder,
                id=name.replace("_", "-"),
                width="140px",
            ),
            _error(name),
            _error("budget." + name.replace("max_cost", "max_cost_usd")),
            spacing="1",
        )

    return rx.accordion.root(
        rx.accordion.item(
            header="Budget (optional)",
            content=rx.hstack(
                field("Most steps", "max_steps", "e.g. 40"),
                field("Most tokens", "max_tokens", "e.g. 200000"),
                field("Most cost (USD)", "max_cost", "e.g. 0.50"),
                wrap="wrap",
            ),
            value="budget",
        ),
        collapsible=True,
        type="single",
        variant="ghost",
        width="100%",
    )


def _new_task() -> rx.Component:
    return panel(
        rx.heading("What should be done?", size="5"),
        rx.text_area(
            value=DashboardState.objective,
            on_change=lambda v: DashboardState.set_field("objective", v),
            placeholder="e.g. Read the CSV I uploaded, total the sales per region, write the "
            "totals to an Excel file and e-mail it to me.",
            rows="4",
            width="100%",
            size="3",
            id="objective",
        ),
        _error("objective"),
        rx.input(
            value=DashboardState.title,
            on_change=lambda v: DashboardState.set_field("title", v),
            placeholder="A short name (optional)",
            max_length=200,
            id="title",
            width="100%",
        ),
        rx.upload.root(
            rx.vstack(
                rx.icon("upload", size=22, color=rx.color("gray", 10)),
                rx.text("Drop files here, or click to choose", size="2", color_scheme="gray"),
                align="center",
                spacing="1",
            ),
            id="new-files",
            multiple=True,
            on_drop=DashboardState.stage(rx.upload_files(upload_id="new-files")),  # type: ignore[call-arg]
            border=f"2px dashed {rx.color('gray', 6)}",
            border_radius="10px",
            padding="1.2em",
            width="100%",
            cursor="pointer",
        ),
        rx.cond(
            DashboardState.staged.length() > 0,
            rx.hstack(
                rx.foreach(
                    DashboardState.staged,
                    lambda name: rx.badge(
                        rx.icon("paperclip", size=12),
                        name,
                        rx.icon(
                            "x", size=12, cursor="pointer", on_click=DashboardState.unstage(name)
                        ),
                        variant="surface",
                        class_name="staged-file",
                    ),
                ),
                wrap="wrap",
            ),
        ),
        rx.hstack(
            rx.text("When", size="2", weight="medium"),
            rx.segmented_control.root(
                rx.segmented_control.item("Now", value="now"),
                rx.segmented_control.item("Later", value="once"),
                rx.segmented_control.item("Repeat", value="repeat"),
                value=DashboardState.when,
                on_change=lambda v: DashboardState.set_field("when", v),  # type: ignore[arg-type]
                id="when",
            ),
            align="center",
        ),
        _schedule_fields(),
        _budget(),
        rx.cond(
            DashboardState.errors.contains("form"),
            rx.callout(DashboardState.errors["form"], color_scheme="red", icon="triangle-alert"),
        ),
        rx.hstack(
            rx.spacer(),
            rx.button(
                rx.cond(DashboardState.when == "now", "Start task", "Schedule task"),
                on_click=DashboardState.create,
                loading=DashboardState.busy,
                size="3",
                id="create-task",
            ),
            width="100%",
        ),
    )


def dashboard_page() -> rx.Component:
    """``/``."""
    return frame(
        "Dashboard",
        _new_task(),
        rx.grid(
            _list("Waiting for you", DashboardState.waiting, "Nothing waits for you.", "waiting"),
            _list("Working", DashboardState.working, "No task is running.", "working"),
            _list("Scheduled", DashboardState.scheduled, "Nothing is scheduled.", "scheduled"),
            _list("Recently finished", DashboardState.recent, "No finished task yet.", "recent"),
            columns="2",
            spacing="4",
            width="100%",
        ),
        current="/",
    )
