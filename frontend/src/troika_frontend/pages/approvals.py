"""Actions that wait for the person: approve, deny with a reason, edit, or fill in a form."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.approval_views import (
    Approval,
    ApprovalGroup,
    Argument,
    FormField,
    approval_of,
    form_values,
    group_approvals,
)
from troika_frontend.components import badge, frame, page_shot, panel, when
from troika_frontend.session import SessionState, listen

__all__ = ["ApprovalsState", "approval_card", "approvals_list", "approvals_page"]

_KINDS = frozenset(
    {"approval.requested", "tool.approved", "tool.denied", "approval.expired", "task.status"}
)


def _title(task: dict[str, Any]) -> str:
    return str(task.get("title") or task.get("objective") or "")


class ApprovalsState(SessionState):
    """Every pending action of the person's tasks (or of one task, on its page)."""

    items: list[Approval] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    task_filter: str = ""
    answering: str = ""

    @rx.var
    def shown(self) -> list[Approval]:
        """The cards on this page."""
        if not self.task_filter:
            return self.items
        return [item for item in self.items if item.task_id == self.task_filter]

    @rx.var
    def groups(self) -> list[ApprovalGroup]:
        """The cards on this page, by task."""
        return group_approvals(self.shown)

    @rx.event
    async def load_all(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """The approvals page: every task's pending actions."""
        self.task_filter = ""
        if self.access_token:
            try:
                await self._reload()
            except ApiError as exc:
                return rx.toast.error(exc.message)
        return None

    async def _reload(self) -> None:
        """Reads the pending actions again (with the titles of their tasks)."""
        pending = await self._api("GET", "/interactions/pending")
        titles: dict[str, str] = {}
        if pending:
            params = [("limit", 100), ("status", "awaiting_approval"), ("status", "awaiting_input")]
            waiting = await self._api("GET", "/tasks", params=params)
            titles = {str(t["id"]): _title(t) for t in waiting["items"]}
        for task_id in {str(i["task_id"]) for i in pending} - titles.keys():
            with contextlib.suppress(ApiError):  # one not among the waiting ones: ask for it
                titles[task_id] = _title(await self._api("GET", f"/tasks/{task_id}"))
        items = [approval_of(i, titles.get(str(i["task_id"]), "")) for i in pending]
        shots: dict[str, str] = {}
        for item in items:
            if item.tool.startswith("browser_"):
                if item.task_id not in shots:
                    shots[item.task_id] = await self._page_shot(item.task_id)
                item.page_shot = shots[item.task_id]
        self.items = items
        self.pending = len(self.items)

    async def _page_shot(self, task_id: str) -> str:
        """The task's browser page after its latest action, as a data: URL ("" when none)."""
        try:
            data = await self._fetch(f"/tasks/{task_id}/browser/screen")
        except ApiError:
            return ""  # no page yet, or it could not be read
        return "data:image/png;base64," + base64.b64encode(data).decode()

    def _find(self, interaction_id: str) -> Approval | None:
        return next((item for item in self.items if item.id == interaction_id), None)

    async def _respond(self, interaction_id: str, body: dict[str, Any]) -> Any:  # noqa: ANN401
        if self.answering == interaction_id:
            return None  # a second click while the first answer is on its way
        self.answering = interaction_id
        try:
            await self._api("POST", f"/interactions/{interaction_id}/respond", json=body)
        except ApiError as exc:
            self.answering = ""
            if exc.status == 409:  # answered elsewhere, or expired
                await self._reload()
            return rx.toast.error(f"Not accepted: {exc.message}")
        self.answering = ""
        await self._reload()
        return rx.toast.success("Approved." if body["decision"] == "approve" else "Denied.")

    @rx.event
    async def approve(self, form: dict[str, Any]) -> Any:  # noqa: ANN401 - Reflex event specs
        """Approves as proposed, with edited arguments, or with the form's values."""
        interaction_id = str(form.get("interaction_id", ""))
        item = self._find(interaction_id)
        if item is None:
            return rx.toast.error("That action is no longer waiting.")
        body: dict[str, Any] = {"decision": "approve"}
        if form.get("remember") in ("on", True, "true"):
            body["remember"] = "task"
        if item.kind == "input":
            try:
                body["values"] = form_values(item, form)
            except ValueError as exc:
                return rx.toast.error(str(exc))
        else:
            edited = str(form.get("arguments", "")).strip()
            if edited:
                try:
                    arguments = json.loads(edited)
                except ValueError as exc:
                    return rx.toast.error(f"The edited arguments are not valid JSON: {exc}")
                if not isinstance(arguments, dict):
                    return rx.toast.error("The edited arguments must be a JSON object.")
                if arguments != json.loads(item.arguments_json):
                    body["arguments"] = arguments
        return await self._respond(interaction_id, body)

    @rx.event
    async def approve_all(self, task_id: str) -> Any:  # noqa: ANN401
        """Approves every action of the task that needs no details typed in, as proposed."""
        approved = 0
        for item in [i for i in self.items if i.task_id == task_id and i.kind != "input"]:
            try:
                await self._api(
                    "POST", f"/interactions/{item.id}/respond", json={"decision": "approve"}
                )
            except ApiError as exc:
                if exc.status != 409:  # answered elsewhere or expired meanwhile: go on
                    await self._reload()
                    return rx.toast.error(f"Stopped after {approved}: {exc.message}")
            else:
                approved += 1
        await self._reload()
        return rx.toast.success(f"Approved {approved} action{'' if approved == 1 else 's'}.")

    @rx.event
    async def deny(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Denies, telling the agents why."""
        interaction_id = str(form.get("interaction_id", ""))
        reason = str(form.get("reason", "")).strip()
        return await self._respond(interaction_id, {"decision": "deny", "reason": reason})


@listen
async def _on_event(session: SessionState, event: dict[str, Any]) -> None:
    if event["kind"] in _KINDS or event["kind"] == "live.connected":
        state = await session.get_state(ApprovalsState)
        await state._reload()


def _argument(argument: Argument) -> rx.Component:
    return rx.box(
        rx.text(argument.name, size="1", weight="bold", color_scheme="gray"),
        rx.cond(
            argument.long,
            rx.el.details(
                rx.el.summary(
                    rx.text(argument.value[:160] + "…", as_="span", size="2"),  # type: ignore[index]
                    cursor="pointer",
                ),
                rx.code_block(argument.value, language="log", wrap_long_lines=True),
                class_name="long-argument",
            ),
            rx.code(
                argument.value,
                size="2",
                class_name="argument-value",
                style={"white_space": "pre-wrap", "word_break": "break-word"},
            ),
        ),
        width="100%",
        class_name="argument",
    )


def _form_field(item: FormField) -> rx.Component:
    label = rx.hstack(
        rx.text(item.label, size="2", weight="medium"),
        rx.cond(item.required, rx.text("*", color_scheme="red")),
        spacing="1",
    )
    control = rx.match(
        item.kind,
        (
            "multiline",
            rx.text_area(
                name=item.name,
                default_value=item.value,
                rows="6",
                width="100%",
                id="field-" + item.name,
            ),
        ),
        (
            "checkbox",
            rx.el.input(
                type="checkbox",
                name=item.name,
                default_checked=item.checked,
                id="field-" + item.name,
            ),
        ),
        (
            "number",
            rx.input(
                name=item.name, default_value=item.value, type="number", id="field-" + item.name
            ),
        ),
        (
            "password",
            rx.input(
                name=item.name,
                default_value=item.value,
                type="password",
                auto_complete="off",
                width="100%",
                id="field-" + item.name,
            ),
        ),
        rx.input(name=item.name, default_value=item.value, width="100%", id="field-" + item.name),
    )
    hint = rx.cond(
        item.kind == "list",
        rx.text("Separate several with commas. ", item.hint, size="1", color_scheme="gray"),
        rx.cond(item.hint != "", rx.text(item.hint, size="1", color_scheme="gray")),
    )
    return rx.vstack(label, control, hint, spacing="1", width="100%")


def approval_card(item: Approval) -> rx.Component:
    """One waiting action with everything needed to decide on it."""
    hidden = rx.el.input(type="hidden", name="interaction_id", value=item.id)
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.icon("shield-alert", color=rx.color("amber", 9)),
                rx.heading(item.tool, size="4", class_name="tool"),
                badge(item.risk, item.risk_color, class_name="risk"),
                rx.cond(item.kind == "input", badge("needs your details", "amber")),
                rx.spacer(),
                rx.link(
                    item.task_title, href="/tasks/" + item.task_id, size="2", class_name="card-task"
                ),
                width="100%",
                align="center",
            ),
            rx.cond(
                item.description != "", rx.text(item.description, size="2", color_scheme="gray")
            ),
            rx.cond(item.subtask != "", rx.text("For subtask ", rx.code(item.subtask), size="1")),
            rx.cond(
                item.same_as != "",
                rx.callout(
                    rx.text("The same call waits for subtask ", item.same_as, " too."),
                    icon="copy",
                    size="1",
                    color_scheme="blue",
                    class_name="duplicate-flag",
                ),
            ),
            rx.vstack(rx.foreach(item.arguments, _argument), width="100%", spacing="2"),
            page_shot(
                item.page_shot,
                "The page now, as this action finds it",
                class_name="page-shot",
                margin="0",
            ),
            rx.form(
                hidden,
                rx.cond(
                    item.kind == "input",
                    rx.vstack(
                        rx.foreach(item.fields, _form_field),
                        width="100%",
                        spacing="3",
                        class_name="approval-form",
                    ),
                    rx.el.details(
                        rx.el.summary("Edit the arguments", cursor="pointer"),
                        rx.text_area(
                            name="arguments",
                            default_value=item.arguments_json,
                            rows="8",
                            width="100%",
                            font_family="monospace",
                            class_name="edit-arguments",
                        ),
                    ),
                ),
                rx.hstack(
                    rx.el.label(
                        rx.el.input(type="checkbox", name="remember", class_name="remember"),
                        rx.text(
                            " Don't ask again for ",
                            item.tool,
                            " in this task",
                            size="2",
                            as_="span",
                        ),
                    ),
                    rx.spacer(),
                    rx.button(
                        rx.icon("check", size=16),
                        rx.cond(item.kind == "input", "Send", "Approve"),
                        type="submit",
                        color_scheme="green",
                        loading=ApprovalsState.answering == item.id,
                        class_name="approve",
                    ),
                    width="100%",
                    align="center",
                    padding_top="0.5em",
                ),
                on_submit=ApprovalsState.approve,
                width="100%",
            ),
            rx.form(
                hidden,
                rx.hstack(
                    rx.input(
                        name="reason",
                        placeholder="Why not? (the agents are told)",
                        width="100%",
                        class_name="deny-reason",
                    ),
                    rx.button(
                        rx.icon("x", size=16),
                        "Deny",
                        type="submit",
                        color_scheme="red",
                        variant="soft",
                        class_name="deny",
                    ),
                    width="100%",
                ),
                on_submit=ApprovalsState.deny,
                reset_on_submit=True,
                width="100%",
            ),
            rx.text("Expires ", when(item.expires), size="1", color_scheme="gray"),
            spacing="3",
            width="100%",
        ),
        width="100%",
        key=item.id,  # its own inputs stay with it when the cards above it go
        class_name="approval-card",
        border=f"1px solid {rx.color('amber', 7)}",
    )


def _approve_all(group: ApprovalGroup) -> rx.Component:
    """ "Approve all", showing what it approves before it does."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                rx.icon("check-check", size=16),
                "Approve all ",
                group.approvable.length(),
                color_scheme="green",
                variant="soft",
                class_name="approve-all",
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Approve all of this task's waiting actions?"),
            rx.alert_dialog.description("Each runs as proposed:"),
            rx.el.ul(
                rx.foreach(group.approvable, lambda line: rx.el.li(rx.text(line, size="2"))),
                class_name="approve-all-list",
                padding_left="1.2em",
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Not now", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(
                        "Approve all",
                        color_scheme="green",
                        on_click=ApprovalsState.approve_all(group.task_id),
                        class_name="approve-all-confirm",
                    )
                ),
                justify="end",
                spacing="3",
                padding_top="1em",
            ),
        ),
    )


def _group(group: ApprovalGroup) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.link(
                rx.heading(group.task_title, size="4"),
                href="/tasks/" + group.task_id,
                class_name="task-link",
            ),
            badge(group.actions.length(), "amber"),
            rx.spacer(),
            rx.cond(group.approvable.length() > 1, _approve_all(group)),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.foreach(group.actions, approval_card),
        width="100%",
        spacing="3",
        class_name="approval-group",
    )


def approvals_list() -> rx.Component:
    """The cards by task, or a calm line when nothing waits."""
    return rx.cond(
        ApprovalsState.shown.length() > 0,
        rx.vstack(
            rx.foreach(ApprovalsState.groups, _group),
            width="100%",
            spacing="5",
            id="approvals",
        ),
        panel(rx.text("Nothing waits for your approval.", color_scheme="gray"), id="no-approvals"),
    )


def approvals_page() -> rx.Component:
    """``/approvals``."""
    return frame("Approvals", approvals_list(), current="/approvals")
