"""Past and present tasks: search, filter, and act on them."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import badge, frame, panel
from troika_frontend.pages.dashboard import task_row
from troika_frontend.session import SessionState
from troika_frontend.views import WAITING, TaskItem, task_item_of

__all__ = ["HistoryState", "history_page"]

PAGE = 20
FILTERS = {
    "all": [],
    "finished": ["completed", "failed", "cancelled"],
    "completed": ["completed"],
    "failed": ["failed"],
    "cancelled": ["cancelled"],
    "waiting": sorted(WAITING),
    "running": ["queued", "planning", "executing", "reviewing"],
    "scheduled": ["scheduled"],
}
SORTS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "cost": "most expensive first",
    "duration": "longest first",
}
_SORT_BY_WORDS = {words: key for key, words in SORTS.items()}
_STATS = ("total", "completed", "running", "waiting", "failed", "cancelled")


class HistoryState(SessionState):
    """The searchable list of tasks."""

    query: str = ""
    show: str = "all"
    sort: str = "newest"
    stats: dict[str, int] = {}  # noqa: RUF012 - how the person's tasks stand, all of them
    spent: str = ""
    items: list[TaskItem] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    total: int = 0
    offset: int = 0
    schedule: str = ""  # only the runs of this schedule (``/history?schedule=<id>``)
    schedule_words: str = ""

    @rx.var
    def has_more(self) -> bool:
        """Whether older tasks follow this page."""
        return self.offset + PAGE < self.total

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Reads the page of tasks that match."""
        if not self.access_token:
            return None
        params: list[tuple[str, Any]] = [("limit", PAGE), ("offset", self.offset)]
        if self.query.strip():
            params.append(("q", self.query.strip()))
        params += [("status", status) for status in FILTERS.get(self.show, [])]
        params.append(("sort", self.sort))
        asked = str(self.router.url.query_parameters.get("schedule", ""))[:64]
        if asked != self.schedule:  # another schedule's runs: its words are read once
            self.schedule, self.schedule_words = asked, ""
        if self.schedule:
            params.append(("schedule", self.schedule))
        try:
            page, stats = await asyncio.gather(
                self._api("GET", "/tasks", params=params), self._api("GET", "/tasks/stats")
            )
            if self.schedule and not self.schedule_words:
                self.schedule_words = await self._runs_of(self.schedule)
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.items = [task_item_of(t) for t in page["items"]]
        self.total = int(page["total"])
        self.stats = {name: int(stats.get(name, 0)) for name in _STATS}
        self.spent = f"${float(stats.get('cost_usd', 0.0)):.2f}"
        return None

    async def _runs_of(self, schedule_id: str) -> str:
        """What the list shows when it shows one schedule's runs."""
        try:
            schedule = await self._api("GET", f"/schedules/{schedule_id}")
        except ApiError as exc:
            if exc.status == 404:
                return "Runs of a schedule that no longer exists"
            raise
        title = schedule.get("title") or schedule.get("objective", "")
        rule = str(schedule.get("description", "")).lower()
        return f"Runs of “{title}” ({rule}, {schedule.get('timezone', '')})"

    @rx.var
    def total_words(self) -> str:
        """How many tasks match, in words."""
        return "1 task" if self.total == 1 else f"{self.total} tasks"

    @rx.var
    def sort_words(self) -> str:
        """The order shown, in words."""
        return SORTS.get(self.sort, SORTS["newest"])

    @rx.event
    async def sort_by(self, words: str) -> Any:  # noqa: ANN401
        """Orders the list (by its words in the menu)."""
        self.sort, self.offset = _SORT_BY_WORDS.get(words, "newest"), 0
        return HistoryState.load

    @rx.event
    async def search(self, text: str) -> Any:  # noqa: ANN401
        """Searches titles and objectives."""
        self.query, self.offset = text[:200], 0
        return HistoryState.load

    @rx.event
    async def filter(self, show: str) -> Any:  # noqa: ANN401
        """Shows tasks of one kind."""
        self.show, self.offset = (show if show in FILTERS else "all"), 0
        return HistoryState.load

    @rx.event
    def page(self, step: int) -> Any:  # noqa: ANN401
        """Older or newer tasks."""
        self.offset = max(0, self.offset + step * PAGE)
        return HistoryState.load

    async def _act(self, method: str, path: str, done: str) -> Any:  # noqa: ANN401
        try:
            answer = await self._api(method, path)
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self.load()
        if method == "POST" and isinstance(answer, dict) and "id" in answer:
            return rx.redirect(f"/tasks/{answer['id']}")
        return rx.toast.success(done)

    @rx.event
    async def rerun(self, task_id: str) -> Any:  # noqa: ANN401
        """Runs a task's objective again."""
        return await self._act("POST", f"/tasks/{task_id}/rerun", "Started again.")

    @rx.event
    async def delete(self, task_id: str) -> Any:  # noqa: ANN401
        """Deletes a task."""
        return await self._act("DELETE", f"/tasks/{task_id}", "Deleted.")


def _row(item: TaskItem) -> rx.Component:
    return rx.hstack(
        rx.box(task_row(item), width="100%"),
        rx.vstack(
            rx.cond(item.took != "", rx.text("ran ", item.took, size="1", class_name="row-took")),
            rx.text(item.cost, size="1", color_scheme="gray", class_name="row-cost"),
            spacing="0",
            align="end",
            flex_shrink="0",
        ),
        rx.menu.root(
            rx.menu.trigger(
                rx.icon_button(rx.icon("ellipsis"), variant="ghost", class_name="task-menu")
            ),
            rx.menu.content(
                rx.menu.item("Open (rename, continue)", on_click=rx.redirect("/tasks/" + item.id)),
                rx.menu.item(
                    "Run again", on_click=HistoryState.rerun(item.id), class_name="menu-rerun"
                ),
                rx.menu.separator(),
                rx.menu.item(
                    "Delete",
                    color="red",
                    on_click=HistoryState.delete(item.id),
                    class_name="menu-delete",
                ),
            ),
        ),
        width="100%",
        align="center",
        class_name="history-row",
    )


def _figure(name: str, words: str, value: rx.Var[Any]) -> rx.Component:
    return rx.card(
        rx.text(words, size="1", color_scheme="gray"),
        rx.text(value, size="5", weight="bold", id=f"stat-{name}"),
        size="1",
    )


def _stat(name: str) -> rx.Component:
    return _figure(name, name.capitalize(), HistoryState.stats[name])


def history_page() -> rx.Component:
    """``/history``."""
    return frame(
        "History",
        rx.hstack(
            rx.input(
                rx.input.slot(rx.icon("search", size=16)),
                placeholder="Search titles and objectives",
                default_value=HistoryState.query,
                on_change=HistoryState.search.debounce(300),  # type: ignore[attr-defined]
                width="100%",
                id="search",
            ),
            rx.select(
                list(FILTERS),
                value=HistoryState.show,
                on_change=HistoryState.filter,
                id="filter",
            ),
            rx.select(
                list(SORTS.values()),
                value=HistoryState.sort_words,
                on_change=HistoryState.sort_by,
                id="sort",
            ),
            width="100%",
            wrap="wrap",
        ),
        rx.grid(
            *(_stat(name) for name in _STATS),
            _figure("spent", "Estimated cost", HistoryState.spent),
            columns=rx.breakpoints(initial="3", md="7"),
            spacing="3",
            width="100%",
            id="stats",
        ),
        panel(
            rx.hstack(
                rx.text(HistoryState.total_words, size="2", color_scheme="gray", id="total"),
                badge(HistoryState.show, "indigo"),
            ),
            rx.cond(
                HistoryState.schedule != "",
                rx.hstack(
                    rx.icon("calendar-clock", size=16),
                    rx.text(HistoryState.schedule_words, size="2", id="schedule-runs-of"),
                    rx.link("Show every task", href="/history", size="2", id="every-task"),
                    align="center",
                    wrap="wrap",
                ),
            ),
            rx.cond(
                HistoryState.items.length() > 0,
                rx.vstack(
                    rx.foreach(HistoryState.items, _row), width="100%", spacing="1", id="history"
                ),
                rx.text("No task matches.", color_scheme="gray"),
            ),
            rx.hstack(
                rx.button(
                    "Newer",
                    variant="soft",
                    on_click=HistoryState.page(-1),
                    disabled=HistoryState.offset == 0,
                ),
                rx.button(
                    "Older",
                    variant="soft",
                    on_click=HistoryState.page(1),
                    disabled=~HistoryState.has_more,
                ),
                justify="end",
                width="100%",
            ),
        ),
        current="/history",
    )
