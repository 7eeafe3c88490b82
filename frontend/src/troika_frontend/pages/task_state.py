"""One task's page state: the task, its whole event log and pending actions, followed live,
and what the person can do with it."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import reflex as rx

from troika_client import ApiError
from troika_frontend.approval_views import Argument, evidence_of
from troika_frontend.pages.approvals import ApprovalsState
from troika_frontend.plan_graph import plan_svg
from troika_frontend.session import SessionState, listen
from troika_frontend.timeline import (
    TimelineGroup,
    TimelineItem,
    group_timeline,
    timeline_item,
    took,
)
from troika_frontend.views import (
    FINAL,
    FileItem,
    Step,
    file_of,
    label,
    reason_of,
    repeats_of,
    status_color,
    step_of,
    within_a_day,
)

__all__ = ["TaskState"]

_PAGE = 500
_DETAIL_KINDS = frozenset(
    {
        "plan.ready",
        "plan.edited",
        "plan.accepted",
        "step.requested",
        "subtask.done",
        "tool.finished",
        "review.verdict",
        "task.status",
        "task.completed",
        "task.needs_guidance",
        "files.uploaded",
        "task.renamed",
    }
)


_BUDGET_OF_RULE = {
    "cost_budget": ("max_cost_usd", "The most it may cost (US dollars)"),
    "token_budget": ("max_tokens", "The most tokens it may use"),
    "step_budget": ("max_steps", "The most steps it may take"),
}
"""The task's budget each budget rule guards, and how the form asks for a new one."""


class TaskState(SessionState):
    """The task on screen and its live timeline."""

    current: str = ""
    found: bool = True
    title: str = ""
    objective: str = ""
    status: str = ""
    status_label: str = ""
    color: str = "gray"
    reason: str = ""
    result: str = ""
    plan_summary: str = ""
    steps: list[Step] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    plan_subtasks: list[dict[str, Any]] = []  # noqa: RUF012 - the plan as the API gives it
    graph: str = ""  # the plan as an SVG picture
    files: list[FileItem] = []  # noqa: RUF012
    timeline: list[TimelineItem] = []  # noqa: RUF012
    agent_filter: str = "everyone"
    every_event: bool = False
    last_seq: int = 0
    review_state: str = ""
    review_summary: str = ""
    tokens: str = "0"
    cost: str = "$0.00"
    calls: int = 0
    evidence: list[Argument] = []  # noqa: RUF012
    guidance_text: str = ""
    pause_rule: str = ""
    budget: dict[str, float] = {}  # noqa: RUF012
    new_limit: str = ""
    agent_costs: str = ""
    new_title: str = ""
    follow_up: str = ""
    schedule_id: str = ""
    schedule_next: str = ""  # when the schedule's waiting run starts (ISO), for a scheduled task
    schedule_soon: bool = False
    schedule_rule: str = ""  # its rule in words with its zone; "Runs once" for a one-off
    final: bool = False
    page_shot: str = ""  # the task's browser page (a data: URL), when it has one

    @rx.var
    def timeline_groups(self) -> list[TimelineGroup]:
        """The timeline as shown: by subtask, routine events folded, narrowed to one agent."""
        return group_timeline(self.timeline, agent=self.agent_filter, every=self.every_event)

    @rx.var
    def took(self) -> str:
        """How long the task has run, from its first event to its latest."""
        if len(self.timeline) < 2:
            return ""
        return took(self.timeline[0].at, self.timeline[-1].at)

    @rx.event
    def set_agent_filter(self, agent: str) -> None:
        """Shows only one agent's events (or everyone's)."""
        self.agent_filter = agent

    @rx.event
    def set_every_event(self, checked: bool) -> None:  # noqa: FBT001 - a switch
        """Shows the routine events too (each step asked, each status)."""
        self.every_event = bool(checked)

    @rx.var
    def budget_question(self) -> str:
        """What to ask when the task's own budget paused it ("" otherwise)."""
        if self.status != "needs_guidance" or self.pause_rule not in _BUDGET_OF_RULE:
            return ""
        return _BUDGET_OF_RULE[self.pause_rule][1]

    @rx.event
    def set_new_limit(self, text: str) -> None:
        """Keeps the new limit being typed."""
        self.new_limit = text

    @rx.event
    async def raise_budget(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Sets a higher budget for what was used up; the task goes on when it allows."""
        key = _BUDGET_OF_RULE.get(self.pause_rule, ("", ""))[0]
        text = self.new_limit.strip().lstrip("$").replace(",", "")
        try:
            amount = float(text) if key == "max_cost_usd" else int(text)
        except ValueError:
            return rx.toast.error("Write the new limit as a number.")
        try:
            await self._api("PUT", f"/tasks/{self.current}/budget",
                            json={**self.budget, key: amount})  # fmt: skip
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.new_limit = ""
        await self._refresh()
        return rx.toast.success(
            "The budget is raised; the task goes on."
            if self.status != "needs_guidance"
            else "Saved, but that is still not enough for the task to go on."
        )

    @rx.var
    def stuck(self) -> bool:
        """Whether the agents wait for the person's guidance."""
        return self.status == "needs_guidance"

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Reads the task, its whole event log and its pending actions; then follows it live."""
        if not self.access_token:
            return None
        task_id = str(self.router.url.path).rstrip("/").rsplit("/", 1)[-1]
        if task_id != self.current:  # another task: nothing of the last one stays on screen
            self.reset()  # type: ignore[no-untyped-call]
            self.current = task_id
        approvals = await self.get_state(ApprovalsState)
        approvals.task_filter = task_id
        try:
            await self._catch_up()
            await self._refresh()  # after the log: the detail is never older than the timeline
            await approvals._reload()
        except ApiError as exc:
            if exc.status == 404:
                self.found = False
                return None
            return rx.toast.error(exc.message)
        self.found = True
        await self._follow_task(task_id, self.last_seq)
        return None

    async def _refresh(self) -> None:
        """Reads the task's detail again."""
        task = await self._api("GET", f"/tasks/{self.current}")
        status = str(task["status"])
        self.title = str(task.get("title") or task.get("objective", ""))
        self.objective = str(task.get("objective", ""))
        self.status, self.status_label, self.color = status, label(status), status_color(status)
        self.reason = reason_of(task)
        self.result = str(task.get("result") or "")
        self.plan_summary = str((task.get("plan") or {}).get("summary", ""))
        self.plan_subtasks = list(task.get("subtasks") or [])
        self.steps = [step_of(s, status) for s in self.plan_subtasks]
        self.graph = plan_svg(self.steps)
        self.files = [file_of(f) for f in task.get("files") or []]
        review = task.get("review") or {}
        self.review_state = (
            "" if not review else "approved" if review.get("approved") else "sent back"
        )
        # An approval's summary is the task's result, shown once above it.
        summary = str(review.get("summary", ""))
        if summary == self.result and review.get("approved"):
            rounds = int(review.get("round") or 1)
            summary = "each subtask was checked against its acceptance criteria" + (
                f", after {rounds} rounds of review." if rounds > 1 else "."
            )
        self.review_summary = summary
        cost = task.get("cost") or {}
        self.tokens = (
            f"{int(cost.get('prompt_tokens', 0)) + int(cost.get('completion_tokens', 0)):,}"
        )
        self.cost = f"${float(cost.get('cost_usd', 0.0)):.4f}"
        self.agent_costs = " · ".join(
            f"{agent} ${float(spent.get('cost_usd', 0.0)):.4f}"
            for agent, spent in sorted((task.get("cost_by_agent") or {}).items())
        )
        self.budget = {
            str(k): v for k, v in (task.get("budget") or {}).items() if isinstance(v, (int, float))
        }
        self.calls = int(cost.get("calls", 0))
        schedule_id = str(task.get("schedule_id") or "")
        if schedule_id and (status == "scheduled" or schedule_id != self.schedule_id):
            await self._load_schedule(schedule_id, waiting=status == "scheduled")
        self.schedule_id = schedule_id
        self.final = status in FINAL
        await self._load_page_shot(task)
        if not self.new_title:
            self.new_title = self.title

    async def _load_schedule(self, schedule_id: str, *, waiting: bool) -> None:
        """The schedule the task is a run of: its rule, and when the waiting run starts."""
        try:
            schedule = await self._api("GET", f"/schedules/{schedule_id}")
        except ApiError:  # a schedule gone: the task still shows, without these lines
            self.schedule_next, self.schedule_rule = "", ""
            return
        self.schedule_rule = repeats_of(schedule) or "Runs once"
        self.schedule_next = str(schedule.get("next_run_at") or "") if waiting else ""
        self.schedule_soon = bool(self.schedule_next) and within_a_day(self.schedule_next)

    async def _catch_up(self) -> bool:
        """Adds the events after the last one shown (the log is the source of truth); whether
        one of them changed what the detail shows."""
        changed = False
        while True:
            page = await self._api(
                "GET",
                f"/tasks/{self.current}/events",
                params={"after": self.last_seq, "limit": _PAGE},
            )
            events = page.get("events") or []
            for event in events:
                changed = (self._add(event) and event["kind"] in _DETAIL_KINDS) or changed
            if len(events) < _PAGE:
                return changed

    def _add(self, event: dict[str, Any]) -> bool:
        """Shows one event, once, in order; whether it was new."""
        seq = int(event["seq"])
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        if event["kind"] == "task.needs_guidance":
            evidence = (event.get("data") or {}).get("evidence") or {}
            self.pause_rule = str(evidence.get("rule", ""))
            self.evidence = evidence_of(evidence)
        item = timeline_item(event)
        if item is not None:
            self.timeline = [*self.timeline, item]
        return True

    async def _on_live(self, event: dict[str, Any]) -> None:
        """A live event of the task on screen."""
        seq = int(event["seq"])
        if seq <= self.last_seq:
            return
        changed = seq > self.last_seq + 1 and await self._catch_up()  # a gap: the log first
        self._add({**event, "created_at": event.get("at")})
        if changed or event["kind"] in _DETAIL_KINDS:
            await self._refresh()

    @rx.event
    def set_guidance(self, text: str) -> None:
        """Keeps the instructions being typed."""
        self.guidance_text = text

    @rx.event
    def set_new_title(self, text: str) -> None:
        """Keeps the new name being typed."""
        self.new_title = text

    @rx.event
    def set_follow_up(self, text: str) -> None:
        """Keeps the follow-up objective being typed."""
        self.follow_up = text

    @rx.event
    async def guide(self, action: str) -> Any:  # noqa: ANN401
        """Answers a stuck task: go on with instructions, re-plan, or cancel."""
        try:
            await self._api(
                "POST",
                f"/tasks/{self.current}/guidance",
                json={"action": action, "text": self.guidance_text.strip()},
            )
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.guidance_text = ""
        await self._refresh()
        await self._clear_cards()
        return rx.toast.success(
            {"continue": "Sent.", "replan": "Re-planning.", "cancel": "Cancelled."}.get(
                action, "Sent."
            )
        )

    @rx.event
    async def cancel(self) -> Any:  # noqa: ANN401
        """Stops the task."""
        try:
            await self._api("POST", f"/tasks/{self.current}/cancel")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self._refresh()
        await self._clear_cards()
        return rx.toast("The task was cancelled.")

    async def _clear_cards(self) -> None:
        """Reads the pending actions again at once (a cancelled or paused task's cards and the
        badge go now, not when the live feed brings the news)."""
        approvals = await self.get_state(ApprovalsState)
        await approvals._reload()

    @rx.event
    async def rerun(self) -> Any:  # noqa: ANN401
        """Runs the same objective again, as a new task."""
        try:
            task = await self._api("POST", f"/tasks/{self.current}/rerun")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.redirect(f"/tasks/{task['id']}")

    @rx.event
    async def continue_task(self) -> Any:  # noqa: ANN401
        """Starts a follow-up that carries this task's result and files."""
        if not self.follow_up.strip():
            return rx.toast.error("Say what should be done next.")
        try:
            task = await self._api(
                "POST",
                f"/tasks/{self.current}/continue",
                json={"objective": self.follow_up.strip()},
            )
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.follow_up = ""
        return rx.redirect(f"/tasks/{task['id']}")

    @rx.event
    async def rename(self) -> Any:  # noqa: ANN401
        """Gives the task a new name."""
        try:
            await self._api("PUT", f"/tasks/{self.current}", json={"title": self.new_title.strip()})
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self._refresh()
        return rx.toast.success("Renamed.")

    @rx.event
    async def delete(self) -> Any:  # noqa: ANN401
        """Deletes the task with its files and log."""
        try:
            await self._api("DELETE", f"/tasks/{self.current}")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.redirect("/history")

    async def _load_page_shot(self, task: dict[str, Any]) -> None:
        """The browser page's screenshot, while the task is under way and used the browser."""
        uses_browser = any(
            hint.startswith("browser_")
            for sub in task.get("subtasks") or []
            for hint in sub.get("tool_hints") or []
        )
        if self.final or not uses_browser:
            self.page_shot = ""
            return
        try:
            data = await self._fetch(f"/tasks/{self.current}/browser/screen")
        except ApiError:
            self.page_shot = ""  # no page yet (404), or it could not be read
            return
        self.page_shot = "data:image/png;base64," + base64.b64encode(data).decode()

    @rx.event
    async def download(self, name: str) -> Any:  # noqa: ANN401
        """Hands one of the task's files to the browser."""
        try:
            data = await self._fetch(f"/tasks/{self.current}/files/{quote(name, safe='/')}")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.download(data=data, filename=name.rsplit("/", 1)[-1])


@listen
async def _on_event(session: SessionState, event: dict[str, Any]) -> None:
    state = await session.get_state(TaskState)
    if state.current and event["task_id"] == state.current:
        await state._on_live(event)
    elif state.current and event["kind"] == "live.connected" and await state._catch_up():
        await state._refresh()
