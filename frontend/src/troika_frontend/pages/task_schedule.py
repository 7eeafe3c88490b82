"""The task page's line about its schedule: when a scheduled task starts (on the person's own
clock, with the time left), how its schedule repeats, and links to the schedule's runs."""

from __future__ import annotations

import reflex as rx

from troika_frontend.components import when
from troika_frontend.pages.dashboard import countdown
from troika_frontend.pages.task_state import TaskState

__all__ = ["schedule_line"]


def schedule_line() -> rx.Component:
    """Shown for a task a schedule made (waiting or run); nothing for any other task."""
    starts = rx.cond(
        (TaskState.status == "scheduled") & (TaskState.schedule_next != ""),
        rx.hstack(
            rx.text(
                "Starts ",
                when(TaskState.schedule_next, id="starts-at"),
                " (your time)",
                size="2",
                weight="medium",
            ),
            countdown(TaskState.schedule_next, TaskState.schedule_soon),
            align="center",
            wrap="wrap",
        ),
    )
    return rx.cond(
        TaskState.schedule_id != "",
        rx.callout(
            rx.vstack(
                starts,
                rx.text(TaskState.schedule_rule, size="2", id="schedule-rule"),
                rx.hstack(
                    rx.link("Schedules", href="/schedules", size="2"),
                    rx.link(
                        "Every run of this schedule",
                        href="/history?schedule=" + TaskState.schedule_id,
                        size="2",
                        id="schedule-runs",
                    ),
                    spacing="4",
                    wrap="wrap",
                ),
                spacing="1",
            ),
            icon="calendar-clock",
            color_scheme="blue",
            width="100%",
            id="task-schedule",
        ),
    )
