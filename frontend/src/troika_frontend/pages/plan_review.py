"""Reviewing a plan before it runs: the plan as a graph and as a list the person can change
(rename, reword, add, remove, reorder, change what waits for what), then start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import labelled, panel
from troika_frontend.pages.task_state import TaskState

__all__ = ["DraftStep", "PlanReview", "plan_review_panel"]

_MOST = 30  # subtasks in one plan (the gateway's limit)


@dataclass
class DraftStep:
    """A subtask as the person edits it."""

    key: str
    title: str
    description: str = ""
    criteria: str = ""  # "done when", one per line
    depends_on: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)


def _draft_of(subtask: dict[str, Any]) -> DraftStep:
    return DraftStep(
        key=str(subtask["key"]),
        title=str(subtask.get("title", "")),
        description=str(subtask.get("description", "")),
        criteria="\n".join(str(c) for c in subtask.get("acceptance_criteria") or []),
        depends_on=[str(d) for d in subtask.get("depends_on") or []],
        tools=[str(t) for t in subtask.get("tool_hints") or []],
    )


class PlanReview(TaskState):
    """The person's draft of the task's plan."""

    editing: bool = False
    draft_for: str = ""
    draft: list[DraftStep] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    problem: str = ""
    saving: bool = False

    @rx.var
    def reviewing(self) -> bool:
        """Whether the task's plan waits for the person."""
        return self.status == "awaiting_plan_review"

    @rx.var
    def open_draft(self) -> bool:
        """Whether the editor shows (a draft of this task's plan, while it waits)."""
        return self.editing and self.draft_for == self.current and self.reviewing

    @rx.var
    def choices(self) -> list[list[str]]:
        """Each subtask of the draft as ``[key, title]``: what another can wait for."""
        return [[s.key, s.title or "(no title yet)"] for s in self.draft]

    @rx.event
    def begin(self) -> None:
        """Opens the editor on the plan as it is now."""
        self.draft = [_draft_of(s) for s in self.plan_subtasks]
        self.draft_for, self.editing, self.problem = self.current, True, ""

    @rx.event
    def discard(self) -> None:
        """Closes the editor; the plan stays as it was."""
        self.editing, self.draft, self.problem = False, [], ""

    def _edit(self, index: int, **changes: Any) -> None:  # noqa: ANN401 - a field's value
        if 0 <= index < len(self.draft):
            step = self.draft[index]
            for name, value in changes.items():
                setattr(step, name, value)
            self.draft = list(self.draft)
        self.problem = ""

    @rx.event
    def set_title(self, index: int, text: str) -> None:
        """Renames a subtask."""
        self._edit(index, title=text)

    @rx.event
    def set_description(self, index: int, text: str) -> None:
        """Rewords what a subtask should do."""
        self._edit(index, description=text)

    @rx.event
    def set_criteria(self, index: int, text: str) -> None:
        """When a subtask counts as done, one condition per line."""
        self._edit(index, criteria=text)

    @rx.event
    def toggle_after(self, index: int, key: str, checked: bool) -> None:  # noqa: FBT001
        """Makes a subtask wait for ``key`` (or no longer)."""
        if not 0 <= index < len(self.draft):
            return
        before = [k for k in self.draft[index].depends_on if k != key]
        self._edit(index, depends_on=[*before, key] if checked else before)

    @rx.event
    def move(self, index: int, by: int) -> None:
        """Moves a subtask up (``by`` -1) or down (+1) the list: the order they start in."""
        other = index + by
        if 0 <= index < len(self.draft) and 0 <= other < len(self.draft):
            steps = list(self.draft)
            steps[index], steps[other] = steps[other], steps[index]
            self.draft = steps

    @rx.event
    def remove(self, index: int) -> None:
        """Takes a subtask out of the plan; the others no longer wait for it."""
        if not 0 <= index < len(self.draft):
            return
        gone = self.draft[index].key
        for step in self.draft:
            step.depends_on = [k for k in step.depends_on if k != gone]
        self.draft = [s for n, s in enumerate(self.draft) if n != index]
        self.problem = ""

    @rx.event
    def add(self) -> None:
        """Adds a subtask at the end (after the last one, which the person can change)."""
        if len(self.draft) >= _MOST:
            self.problem = f"A plan has at most {_MOST} subtasks."
            return
        taken = {s.key for s in self.draft}
        number = len(self.draft) + 1
        while f"step-{number}" in taken:
            number += 1
        after = [self.draft[-1].key] if self.draft else []
        self.draft = [*self.draft, DraftStep(key=f"step-{number}", title="", depends_on=after)]
        self.problem = ""

    def _body(self, *, start: bool) -> dict[str, Any] | None:
        """The draft as ``PUT /tasks/{id}/plan`` takes it; ``None`` (and the problem said)
        when it cannot be sent as it is."""
        if not self.draft:
            self.problem = "A plan needs at least one subtask."
            return None
        untitled = [str(n) for n, s in enumerate(self.draft, 1) if not s.title.strip()]
        if untitled:
            self.problem = f"Give subtask {', '.join(untitled)} a name."
            return None
        return {
            "start": start,
            "subtasks": [
                {
                    "id": s.key,
                    "title": s.title.strip(),
                    "description": s.description.strip(),
                    "depends_on": s.depends_on,
                    "acceptance_criteria": [
                        line.strip() for line in s.criteria.splitlines() if line.strip()
                    ],
                    "tool_hints": s.tools,
                }
                for s in self.draft
            ],
        }

    @rx.event
    async def save(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Keeps the draft as the task's plan; it still waits for the person."""
        body = self._body(start=False)
        return None if body is None else await self._put_plan(body)

    @rx.event
    async def save_and_start(self) -> Any:  # noqa: ANN401
        """Keeps the draft as the task's plan and starts the task with it."""
        body = self._body(start=True)
        return None if body is None else await self._put_plan(body)

    @rx.event
    async def accept(self) -> Any:  # noqa: ANN401
        """Starts the task with the plan as it is."""
        return await self._put_plan({"start": True})

    async def _put_plan(self, body: dict[str, Any]) -> Any:  # noqa: ANN401
        self.saving = True
        try:
            await self._api("PUT", f"/tasks/{self.current}/plan", json=body)
        except ApiError as exc:
            messages = [str(e.get("message", "")) for e in exc.errors if e.get("message")]
            self.problem = (
                "The plan cannot be worked as it is: " + "; ".join(messages)
                if exc.status == 422 and messages
                else exc.detail
            )
            return None
        finally:
            self.saving = False
        self.editing, self.draft, self.problem = False, [], ""
        await self._refresh()
        return rx.toast.success("Started." if body["start"] else "The plan is saved.")


def _dependency(index: rx.Var[int], step: DraftStep, choice: rx.Var[list[str]]) -> rx.Component:
    key, title = choice[0], choice[1]
    return rx.cond(
        key != step.key,
        labelled(
            rx.checkbox(
                checked=step.depends_on.contains(key),  # type: ignore[attr-defined]
                on_change=lambda checked: PlanReview.toggle_after(index, key, checked),
                class_name="draft-after",
                data_after=key,
            ),
            title,
            size="1",
            spacing="1",
        ),
    )


def _draft_step(step: DraftStep, index: rx.Var[int]) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(index + 1, ".", weight="bold"),
                rx.input(
                    value=step.title,
                    on_change=lambda text: PlanReview.set_title(index, text),
                    placeholder="What this step is called",
                    flex="1",
                    min_width="10em",
                    class_name="draft-title",
                ),
                rx.icon_button(
                    rx.icon("arrow-up", size=14),
                    variant="soft",
                    size="1",
                    disabled=index == 0,
                    on_click=PlanReview.move(index, -1),
                    aria_label="Move up",
                    class_name="draft-up",
                ),
                rx.icon_button(
                    rx.icon("arrow-down", size=14),
                    variant="soft",
                    size="1",
                    disabled=index == PlanReview.draft.length() - 1,
                    on_click=PlanReview.move(index, 1),
                    aria_label="Move down",
                    class_name="draft-down",
                ),
                rx.icon_button(
                    rx.icon("trash-2", size=14),
                    variant="soft",
                    color_scheme="red",
                    size="1",
                    on_click=PlanReview.remove(index),
                    aria_label="Remove this step",
                    class_name="draft-remove",
                ),
                width="100%",
                align="center",
                wrap="wrap",
            ),
            rx.text_area(
                value=step.description,
                on_change=lambda text: PlanReview.set_description(index, text),
                placeholder="What exactly should be done",
                rows="2",
                width="100%",
                class_name="draft-description",
            ),
            rx.text_area(
                value=step.criteria,
                on_change=lambda text: PlanReview.set_criteria(index, text),
                placeholder="Done when… (one condition per line)",
                rows="2",
                width="100%",
                class_name="draft-criteria",
            ),
            rx.cond(
                PlanReview.draft.length() > 1,
                rx.hstack(
                    rx.text("Starts after:", size="1", color_scheme="gray"),
                    rx.foreach(PlanReview.choices, lambda c: _dependency(index, step, c)),
                    wrap="wrap",
                    align="center",
                ),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        class_name="draft-step",
    )


def plan_review_panel() -> rx.Component:
    """The plan waiting for the person: start it, or change it first."""
    editor = rx.vstack(
        rx.foreach(PlanReview.draft, _draft_step),
        rx.button(
            rx.icon("plus", size=14),
            "Add a step",
            variant="soft",
            on_click=PlanReview.add,
            id="draft-add",
        ),
        rx.hstack(
            rx.button(
                "Start with this plan",
                on_click=PlanReview.save_and_start,
                loading=PlanReview.saving,
                id="draft-start",
            ),
            rx.button("Save", variant="soft", on_click=PlanReview.save, id="draft-save"),
            rx.button(
                "Discard changes",
                variant="soft",
                color_scheme="gray",
                on_click=PlanReview.discard,
                id="draft-discard",
            ),
            wrap="wrap",
        ),
        width="100%",
        spacing="3",
    )
    return rx.cond(
        PlanReview.reviewing,
        panel(
            rx.hstack(
                rx.icon("list-checks", color=rx.color("amber", 9)),
                rx.heading("The plan waits for your review", size="4"),
                align="center",
            ),
            rx.text(
                "Nothing runs until you start it. Change what each step does, add or remove "
                "steps, or choose what each waits for.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                PlanReview.problem != "",
                rx.callout(
                    PlanReview.problem,
                    color_scheme="red",
                    icon="triangle-alert",
                    id="draft-problem",
                ),
            ),
            rx.cond(
                PlanReview.open_draft,
                editor,
                rx.hstack(
                    rx.button(
                        "Start with this plan",
                        on_click=PlanReview.accept,
                        loading=PlanReview.saving,
                        id="plan-accept",
                    ),
                    rx.button(
                        "Edit the plan", variant="soft", on_click=PlanReview.begin, id="plan-edit"
                    ),
                    wrap="wrap",
                ),
            ),
            id="plan-review",
            border=f"1px solid {rx.color('amber', 7)}",
        ),
    )
