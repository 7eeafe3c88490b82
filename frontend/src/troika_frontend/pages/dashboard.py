"""The dashboard: start a task (with files, a schedule, a budget), and see what is going on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import reflex as rx

from troika_frontend.components import badge, field_error, frame, labelled, panel, when
from troika_frontend.pages.dashboard_state import ZONES, DashboardState

if TYPE_CHECKING:
    from troika_frontend.views import TaskItem

__all__ = ["countdown", "dashboard_page", "task_row"]


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
                rx.cond(
                    item.repeats != "",
                    rx.hstack(
                        rx.icon("repeat", size=12),
                        rx.text(item.repeats, size="1", class_name="repeats"),
                        align="center",
                        spacing="1",
                        color=rx.color("gray", 11),
                    ),
                ),
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
    return field_error(DashboardState.errors, name)


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
                        max_width="100%",
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


EXAMPLES = (
    "Write a haiku about message queues and save it to haiku.txt",
    (
        "Create a CSV of three cities with their populations, total them and save a short "
        "report as report.md"
    ),
    (
        "Search the web for this week's news about heat pumps and write a one-page summary "
        "with the links to summary.md"
    ),
    "Read the CSV file I upload, total each column and save the totals as an Excel workbook",
)
"""What a first task could be: each fills the composer (each can be done with the tools)."""

_EXAMPLE_STYLE = {
    "white_space": "normal",
    "height": "auto",
    "text_align": "left",
    "padding": "0.5em 0.75em",
}


def _examples() -> rx.Component:
    return rx.vstack(
        rx.text("Not sure where to start? Try one:", size="2", color_scheme="gray"),
        rx.flex(
            *(
                rx.button(
                    text,
                    variant="surface",
                    size="2",
                    on_click=DashboardState.set_field("objective", text),
                    class_name="example",
                    style=_EXAMPLE_STYLE,
                )
                for text in EXAMPLES
            ),
            wrap="wrap",
            gap="2",
            width="100%",
        ),
        spacing="2",
        width="100%",
        id="examples",
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
        rx.cond(DashboardState.first_run, _examples()),
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
            rx.cond(
                DashboardState.when == "now",
                labelled(
                    rx.checkbox(
                        checked=DashboardState.review_plan,
                        on_change=DashboardState.set_review_plan,
                        id="review-plan",
                    ),
                    "Let me review the plan first",
                ),
            ),
            rx.spacer(),
            rx.button(
                rx.cond(DashboardState.when == "now", "Start task", "Schedule task"),
                on_click=DashboardState.create,
                loading=DashboardState.busy,
                size="3",
                id="create-task",
            ),
            width="100%",
            align="center",
            wrap="wrap",
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
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="4",
            width="100%",
        ),
        current="/",
    )
