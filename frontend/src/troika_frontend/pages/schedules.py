"""Schedules: what runs when; pause, resume, cancel."""

from __future__ import annotations

from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import badge, confirm_button, frame, panel, when
from troika_frontend.pages.dashboard import countdown
from troika_frontend.session import SessionState, listen
from troika_frontend.views import ScheduleItem, schedule_of

__all__ = ["SchedulesState", "schedules_page"]


class SchedulesState(SessionState):
    """The person's schedules."""

    items: list[ScheduleItem] = []  # noqa: RUF012 - Reflex state vars are declared on the class

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Reads the schedules."""
        if not self.access_token:
            return None
        try:
            self.items = [schedule_of(s) for s in await self._api("GET", "/schedules")]
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return None

    async def _act(self, method: str, path: str, done: str) -> Any:  # noqa: ANN401
        try:
            await self._api(method, path)
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self.load()
        return rx.toast.success(done)

    @rx.event
    async def pause(self, schedule_id: str) -> Any:  # noqa: ANN401
        """Stops a repeating schedule's runs until resumed."""
        return await self._act("POST", f"/schedules/{schedule_id}/pause", "Paused.")

    @rx.event
    async def resume(self, schedule_id: str) -> Any:  # noqa: ANN401
        """Lets a paused schedule run again (from its next time on)."""
        return await self._act("POST", f"/schedules/{schedule_id}/resume", "Resumed.")

    @rx.event
    async def cancel(self, schedule_id: str) -> Any:  # noqa: ANN401
        """Ends a schedule: nothing more runs."""
        return await self._act("DELETE", f"/schedules/{schedule_id}", "Cancelled.")


@listen
async def _on_event(session: SessionState, event: dict[str, Any]) -> None:
    if event["kind"] in ("task.status", "task.scheduled"):
        state = await session.get_state(SchedulesState)
        if state.router.url.path.startswith("/schedules"):
            await state.load()


def _row(item: ScheduleItem) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.vstack(
                rx.hstack(
                    badge(item.status, item.color, class_name="schedule-status"),
                    rx.text(item.title, weight="medium"),
                    align="center",
                ),
                rx.text(item.description, " · ", item.timezone, size="2", color_scheme="gray"),
                rx.hstack(
                    rx.text(
                        "Next: ", rx.cond(item.next_run != "", when(item.next_run), "—"), size="2"
                    ),
                    countdown(item.next_run_at, item.soon),
                    align="center",
                ),
                rx.cond(
                    item.runs > 0,
                    rx.text(
                        rx.link(
                            item.runs_words + " so far",
                            href="/history?schedule=" + item.id,
                            class_name="schedule-runs",
                        ),
                        rx.cond(
                            item.last_task_id != "",
                            rx.text(
                                " · ",
                                rx.link(
                                    "the last one",
                                    href="/tasks/" + item.last_task_id,
                                    class_name="last-run",
                                ),
                                rx.cond(
                                    item.last_run != "",
                                    rx.text(" started ", when(item.last_run), as_="span"),
                                ),
                                as_="span",
                            ),
                        ),
                        size="1",
                        color_scheme="gray",
                    ),
                    rx.text("No run yet", size="1", color_scheme="gray"),
                ),
                spacing="1",
                align="start",
            ),
            rx.spacer(),
            rx.cond(
                item.task_id != "", rx.link("Waiting task", href="/tasks/" + item.task_id, size="2")
            ),
            rx.cond(
                item.repeating & (item.status == "active"),
                rx.button(
                    "Pause",
                    variant="soft",
                    on_click=SchedulesState.pause(item.id),
                    class_name="pause",
                ),
            ),
            rx.cond(
                item.repeating & (item.status == "paused"),
                rx.button(
                    "Resume",
                    variant="soft",
                    on_click=SchedulesState.resume(item.id),
                    class_name="resume",
                ),
            ),
            rx.cond(
                (item.status == "active") | (item.status == "paused"),
                confirm_button(
                    "Cancel",
                    SchedulesState.cancel(item.id),
                    title="Cancel this schedule?",
                    description="Nothing more will run; the waiting task is cancelled.",
                    class_name="cancel-schedule",
                ),
            ),
            align="center",
            width="100%",
            spacing="3",
        ),
        width="100%",
        class_name="schedule",
    )


def schedules_page() -> rx.Component:
    """``/schedules``."""
    return frame(
        "Schedules",
        rx.cond(
            SchedulesState.items.length() > 0,
            rx.vstack(
                rx.foreach(SchedulesState.items, _row), width="100%", spacing="3", id="schedules"
            ),
            panel(
                rx.text(
                    "Nothing is scheduled. Choose “Later” or “Repeat” when you start a task.",
                    color_scheme="gray",
                )
            ),
        ),
        current="/schedules",
    )
