"""Past and present tasks: search, filter, and act on them."""

from __future__ import annotations

from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import badge, frame, panel
from troika_frontend.pages.dashboard import task_row
from troika_frontend.session import SessionState
from troika_frontend.views import TaskItem, task_item_of

__all__ = ["HistoryState", "history_page"]

PAGE = 20
FILTERS = {
    "all": [],
    "finished": ["completed", "failed", "cancelled"],
    "completed": ["completed"],
    "failed": ["failed"],
    "cancelled": ["cancelled"],
    "waiting": ["awaiting_approval", "awaiting_input", "needs_guidance"],
    "running": ["queued", "planning", "executing", "reviewing"],
    "scheduled": ["scheduled"],
}


class HistoryState(SessionState):
    """The searchable list of tasks."""

    query: str = ""
    show: str = "all"
    items: list[TaskItem] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    total: int = 0
    offset: int = 0

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
        try:
            page = await self._api("GET", "/tasks", params=params)
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.items = [task_item_of(t) for t in page["items"]]
        self.total = int(page["total"])
        return None

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
            width="100%",
        ),
        panel(
            rx.hstack(
                rx.text(HistoryState.total, " tasks", size="2", color_scheme="gray"),
                badge(HistoryState.show, "indigo"),
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
