"""One task, live: plan, timeline, approvals, review, files, cost, and what to do next."""

from __future__ import annotations

from typing import TYPE_CHECKING

import reflex as rx

from troika_frontend.components import (
    badge,
    confirm_button,
    frame,
    labelled,
    markdown,
    page_shot,
    panel,
    stat,
    when,
)
from troika_frontend.pages.approvals import ApprovalsState, approvals_list
from troika_frontend.pages.file_preview import FilePreviewState, file_preview
from troika_frontend.pages.plan_review import plan_review_panel
from troika_frontend.pages.task_schedule import schedule_line
from troika_frontend.pages.task_state import TaskState
from troika_frontend.timeline import AGENTS

if TYPE_CHECKING:
    from troika_frontend.timeline import TimelineGroup, TimelineItem
    from troika_frontend.views import Step

__all__ = ["task_page"]


def _step(step: Step) -> rx.Component:
    return rx.hstack(
        badge(step.status, step.color, class_name="step-status"),
        rx.vstack(
            rx.hstack(rx.code(step.key), rx.text(step.title, weight="medium"), align="center"),
            rx.cond(
                step.depends_on != "",
                rx.text("after ", step.depends_on, size="1", color_scheme="gray"),
            ),
            rx.cond(step.result != "", rx.box(markdown(step.result), class_name="step-result")),
            rx.cond(
                step.spent != "",
                rx.text(step.spent, size="1", color_scheme="gray", class_name="step-spent"),
            ),
            spacing="1",
            align="start",
            width="100%",
        ),
        align="start",
        width="100%",
        class_name="step",
        padding_y="0.4em",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
    )


def _event(item: TimelineItem) -> rx.Component:
    return rx.hstack(
        rx.box(
            width="10px",
            height="10px",
            border_radius="50%",
            margin_top="0.45em",
            background=rx.color(item.color, 9),
            flex_shrink="0",
        ),  # type: ignore[arg-type]
        rx.vstack(
            rx.hstack(
                rx.text(
                    item.who,
                    size="1",
                    weight="bold",
                    color_scheme="gray",
                    text_transform="uppercase",
                ),
                rx.text(item.title, size="2", weight="medium"),
                rx.cond(
                    item.times > 1,
                    rx.badge(
                        "\u00d7", item.times, variant="soft", radius="full", class_name="times"
                    ),
                ),
                rx.spacer(),
                rx.text(when(item.at), size="1", color_scheme="gray"),
                width="100%",
            ),
            rx.cond(item.body != "", rx.box(markdown(item.body), width="100%", size="2")),
            rx.cond(
                item.detail != "",
                rx.el.details(
                    rx.el.summary("Details", cursor="pointer"),
                    rx.code_block(item.detail, language="log", wrap_long_lines=True),
                    class_name="event-detail",
                ),
            ),
            spacing="1",
            width="100%",
        ),
        width="100%",
        class_name="event",
        data_seq=item.seq,
        data_kind=item.kind,
        data_who=item.who,
    )


def _group(group: TimelineGroup) -> rx.Component:
    """A subtask's events under its name, with how long it took; a task's event alone."""
    return rx.cond(
        group.subtask == "",
        rx.foreach(group.events, _event),
        rx.el.details(
            rx.el.summary(
                rx.text(
                    rx.text("Subtask ", as_="span", color_scheme="gray"),
                    rx.code(group.subtask),
                    rx.text(
                        " · ",
                        group.size,
                        " · ",
                        group.took,
                        as_="span",
                        color_scheme="gray",
                        size="1",
                    ),
                    as_="span",
                    size="2",
                ),
                cursor="pointer",
            ),
            rx.vstack(
                rx.foreach(group.events, _event),
                spacing="3",
                width="100%",
                padding_left="1em",
                padding_top="0.5em",
                border_left=f"2px solid {rx.color(group.color, 6)}",
            ),
            open=True,
            class_name="timeline-group",
            data_subtask=group.subtask,
            width="100%",
        ),
    )


def _timeline() -> rx.Component:
    return panel(
        rx.hstack(
            rx.heading("Timeline", size="4"),
            rx.cond(
                TaskState.took != "",
                rx.text("over ", TaskState.took, size="1", color_scheme="gray", id="took"),
            ),
            rx.spacer(),
            rx.select(
                list(AGENTS),
                value=TaskState.agent_filter,
                on_change=TaskState.set_agent_filter,
                size="1",
                id="timeline-agent",
            ),
            labelled(
                rx.switch(
                    checked=TaskState.every_event,
                    on_change=TaskState.set_every_event,
                    size="1",
                    id="timeline-every",
                ),
                "every event",
                size="1",
                spacing="1",
            ),
            rx.text(TaskState.timeline.length(), " events", size="1", color_scheme="gray"),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.vstack(
            rx.foreach(TaskState.timeline_groups, _group),
            width="100%",
            spacing="3",
            id="timeline",
        ),
    )


def _page_shot() -> rx.Component:
    """The task's browser page as its latest browser action left it (what the agent hands
    over)."""
    return page_shot(
        TaskState.page_shot,
        "The task's browser page, after its latest action",
        id="page-shot",
        margin="0.75em 0",
    )


def _guidance() -> rx.Component:
    return rx.cond(
        TaskState.stuck,
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.icon("life-buoy", color=rx.color("orange", 9)),
                    rx.heading("The agents need your guidance", size="4"),
                    align="center",
                ),
                rx.text(TaskState.reason, id="stuck-reason"),
                rx.cond(
                    TaskState.budget_question != "",
                    rx.hstack(
                        rx.vstack(
                            rx.text(TaskState.budget_question, size="1", color_scheme="gray"),
                            rx.input(
                                value=TaskState.new_limit,
                                on_change=TaskState.set_new_limit,
                                width="10em",
                                id="new-limit",
                            ),
                            spacing="1",
                        ),
                        rx.button(
                            "Raise the budget and go on",
                            on_click=TaskState.raise_budget,
                            id="raise-budget",
                        ),
                        align="end",
                        wrap="wrap",
                    ),
                ),
                _page_shot(),
                rx.cond(
                    TaskState.evidence.length() > 0,
                    rx.el.details(
                        rx.el.summary("What they saw", cursor="pointer"),
                        rx.foreach(
                            TaskState.evidence,
                            lambda e: rx.box(
                                rx.text(
                                    e.name, weight="bold", size="1", class_name="evidence-name"
                                ),
                                rx.box(
                                    rx.code_block(e.value, language="log", wrap_long_lines=True),
                                    class_name="evidence-value",
                                ),
                            ),
                        ),
                        id="evidence",
                    ),
                ),
                rx.text_area(
                    value=TaskState.guidance_text,
                    on_change=TaskState.set_guidance,
                    placeholder="Instructions for the agents (e.g. use the second sheet)",
                    width="100%",
                    rows="3",
                    id="guidance-text",
                ),
                rx.hstack(
                    rx.button(
                        "Continue with these instructions",
                        on_click=TaskState.guide("continue"),
                        id="guide-continue",
                    ),
                    rx.button(
                        "Re-plan",
                        variant="soft",
                        on_click=TaskState.guide("replan"),
                        id="guide-replan",
                    ),
                    rx.button(
                        "Cancel the task",
                        variant="soft",
                        color_scheme="red",
                        on_click=TaskState.guide("cancel"),
                        id="guide-cancel",
                    ),
                    wrap="wrap",
                ),
                spacing="3",
                width="100%",
            ),
            width="100%",
            id="guidance",
            border=f"1px solid {rx.color('orange', 7)}",
        ),
    )


def _actions() -> rx.Component:
    return rx.hstack(
        rx.cond(
            ~TaskState.final & (TaskState.status != ""),
            rx.button(
                "Cancel",
                variant="soft",
                color_scheme="red",
                on_click=TaskState.cancel,
                id="cancel-task",
            ),
        ),
        rx.cond(
            TaskState.final,
            rx.button("Run again", variant="soft", on_click=TaskState.rerun, id="rerun-task"),
        ),
        rx.popover.root(
            rx.popover.trigger(rx.button("Rename", variant="soft", color_scheme="gray")),
            rx.popover.content(
                rx.hstack(
                    rx.input(
                        value=TaskState.new_title,
                        on_change=TaskState.set_new_title,
                        id="rename-input",
                    ),
                    rx.popover.close(
                        rx.button("Save", on_click=TaskState.rename, id="rename-save")
                    ),
                )
            ),
        ),
        confirm_button(
            "Delete",
            TaskState.delete,
            title="Delete this task?",
            description="Its files and its history go with it.",
            id="delete-task",
        ),
        wrap="wrap",
    )


def _files() -> rx.Component:
    return panel(
        rx.heading("Files", size="4"),
        rx.cond(
            TaskState.files.length() > 0,
            rx.vstack(
                rx.foreach(
                    TaskState.files,
                    lambda f: rx.hstack(
                        rx.icon("file", size=16),
                        rx.text(f.name, class_name="file-name"),
                        rx.text(f.size, size="1", color_scheme="gray"),
                        badge(f.origin, "gray"),
                        rx.spacer(),
                        rx.button(
                            rx.icon("eye", size=14),
                            "Preview",
                            size="1",
                            variant="soft",
                            color_scheme="gray",
                            on_click=FilePreviewState.show(f.name),
                            class_name="preview",
                        ),
                        rx.button(
                            rx.icon("download", size=14),
                            "Download",
                            size="1",
                            variant="soft",
                            on_click=TaskState.download(f.name),
                            class_name="download",
                        ),
                        width="100%",
                        align="center",
                        wrap="wrap",
                        class_name="file",
                    ),
                ),
                width="100%",
            ),
            rx.text("No files yet.", size="2", color_scheme="gray"),
        ),
        id="files",
    )


def _summary() -> rx.Component:
    return panel(
        rx.hstack(
            badge(TaskState.status_label, TaskState.color, size="3", id="task-status"),
            rx.text(TaskState.reason, size="2", color_scheme="gray"),
            align="center",
            wrap="wrap",
        ),
        rx.text(TaskState.objective, size="3", id="objective-text"),
        rx.hstack(
            stat("Tokens", TaskState.tokens, "tokens"),
            stat("Estimated cost", TaskState.cost, "cost"),
            stat("Model calls", TaskState.calls, "calls"),
            spacing="6",
            wrap="wrap",
        ),
        rx.cond(
            TaskState.agent_costs != "",
            rx.text(
                "By agent: ", TaskState.agent_costs, size="1", color_scheme="gray", id="agent-costs"
            ),
        ),
        rx.cond(
            TaskState.result != "",
            rx.box(rx.heading("Result", size="3"), markdown(TaskState.result), id="result"),
        ),
        rx.cond(
            TaskState.review_state != "",
            rx.callout(
                rx.text(
                    rx.text("Review: ", TaskState.review_state, weight="bold", as_="span"),
                    " ",
                    TaskState.review_summary,
                ),
                icon="badge-check",
                color_scheme=rx.cond(TaskState.review_state == "approved", "green", "orange"),  # type: ignore[arg-type]
                id="review",
            ),
        ),
    )


def task_page() -> rx.Component:
    """``/tasks/[task_id]``."""
    body = rx.vstack(
        _summary(),
        schedule_line(),
        _guidance(),
        plan_review_panel(),
        rx.cond(
            ApprovalsState.shown.length() > 0,
            rx.box(
                rx.heading("Waiting for you", size="4", padding_bottom="0.5em"),
                approvals_list(),
                width="100%",
            ),
        ),
        rx.grid(
            panel(
                rx.heading("Plan", size="4"),
                rx.cond(TaskState.plan_summary != "", markdown(TaskState.plan_summary)),
                rx.cond(
                    TaskState.steps.length() > 0,
                    rx.vstack(
                        rx.box(rx.html(TaskState.graph), width="100%", id="plan-graph"),
                        rx.foreach(TaskState.steps, _step),
                        width="100%",
                        spacing="0",
                    ),
                    rx.text(
                        rx.match(
                            TaskState.status,
                            ("scheduled", "The plan is made when the task starts."),
                            ("queued", "The planner is at work."),
                            ("planning", "The planner is at work."),
                            "There is no plan.",
                        ),
                        size="2",
                        color_scheme="gray",
                    ),
                ),
                id="plan",
            ),
            _files(),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="4",
            width="100%",
        ),
        file_preview(),
        _timeline(),
        rx.cond(
            TaskState.final,
            panel(
                rx.heading("Continue from here", size="4"),
                rx.hstack(
                    rx.input(
                        value=TaskState.follow_up,
                        on_change=TaskState.set_follow_up,
                        placeholder="What should be done next with this result?",
                        width="100%",
                        id="follow-up",
                    ),
                    rx.button("Continue", on_click=TaskState.continue_task, id="continue-task"),
                    width="100%",
                ),
            ),
        ),
        spacing="4",
        width="100%",
    )
    return frame(
        TaskState.title,
        rx.cond(
            TaskState.found,
            body,
            panel(rx.text("There is no such task (it may have been deleted).")),
        ),
        actions=_actions(),
    )
