"""``/how-it-works``: what happens to an objective, for someone who has not tried it yet."""

from __future__ import annotations

import reflex as rx

from troika_frontend.components import panel, public_frame

__all__ = ["how_it_works_page"]

_STEPS = (
    (
        "list-checks",
        "1. The planner breaks it down",
        (
            "You write what you want done, in plain words, and may add files. The planner turns it "
            "into subtasks, each with what it depends on, the tools it will likely need and how to "
            "tell it is done. Subtasks that do not depend on each other run side by side. Tick "
            "“Let me review the plan first” to change the plan before anything runs."
        ),
    ),
    (
        "wrench",
        "2. The executor does the work, with real tools",
        (
            "Searching the web and the news, reading pages, calling web APIs, reading and writing "
            "files, CSV and Excel, sending e-mail, running Python in a sandbox, driving a browser, "
            "posting to your social accounts, and, once you pair it, your own PC's desktop."
        ),
    ),
    (
        "shield-check",
        "3. You approve every action",
        (
            "Each tool call waits for you with everything it will do: approve it, deny it with a "
            "reason the agents will read, edit its arguments, or fill in a form where the tool "
            "needs your details. Per tool, Profile → Tool policies lets you be asked every time "
            "(the default), once per task, never (allow it), or refuse it outright."
        ),
    ),
    (
        "badge-check",
        "4. The reviewer checks the result",
        (
            "When every subtask is done, the reviewer compares the work with your objective and "
            "either accepts it or sends subtasks back with what to fix."
        ),
    ),
    (
        "message-circle-question",
        "When they are stuck, they ask",
        (
            "After repeated failures, refusals or unusable answers, the task pauses and tells you "
            "why. You can add instructions and continue, ask for a new plan, or cancel."
        ),
    ),
    (
        "calendar-clock",
        "Later, or again and again",
        (
            "A task can start at a date and time or on a schedule written in plain words "
            "(\u201cevery weekday at 8am\u201d). Everything the agents do is kept: the timeline of "
            "each task, its files, its cost and every decision."
        ),
    ),
)


def _step(icon: str, title: str, text: str) -> rx.Component:
    return rx.hstack(
        rx.icon(icon, size=22, color=rx.color("indigo", 9), flex_shrink="0"),
        rx.vstack(
            rx.heading(title, size="3"),
            rx.text(text, size="2", color_scheme="gray"),
            spacing="1",
        ),
        align="start",
        spacing="3",
        class_name="guide-step",
    )


def how_it_works_page() -> rx.Component:
    """``/how-it-works``: open to everyone."""
    return public_frame(
        rx.heading("How it works", size="6", id="how-it-works"),
        panel(*(_step(*step) for step in _STEPS)),
        rx.hstack(
            rx.link(rx.button("Start a task", size="3"), href="/"),
            rx.link("Create an account", href="/signup", size="2"),
            align="center",
            spacing="4",
            wrap="wrap",
        ),
        max_width="640px",
    )
