"""The rules of a task's plan: asking the planners for one (when the task starts or its
schedule fires), taking their answer, and the person's review of it. :class:`Planning` is the
part of the rules (:mod:`.rules`) that these commands go through; like them it reads and writes
nothing."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any

import msgspec

from troika_gateway.pipeline.change import Change, Refused
from troika_gateway.pipeline.liveness import PLANNING, stale
from troika_gateway.pipeline.snapshot import SubtaskState
from troika_gateway.pipeline.states import TaskStatus
from troika_shared import task_events as ev
from troika_shared.messages import Plan

if TYPE_CHECKING:
    from troika_gateway.pipeline.snapshot import EditPlan, Fire
    from troika_shared.messages import PlanProduced

__all__ = ["Planning", "plan_problem"]


class Planning(Change):
    """How the plan commands change a task."""

    def start(self) -> None:
        if self.s.status not in (TaskStatus.QUEUED, TaskStatus.SCHEDULED):
            raise Refused(f"the task has started already ({self.s.status.value})")
        self.s.started_at = self.s.started_at or self.now
        self.request_plan(replan=False)

    def fire(self, command: Fire) -> None:
        if self.s.status != TaskStatus.SCHEDULED:
            raise Refused(f"the task is not waiting for its schedule ({self.s.status.value})")
        reason = "the time passed while Troika was not running; it runs once now"
        fired = ev.ScheduleFired(
            schedule_id=command.schedule_id,
            due=command.due.isoformat(),
            late=command.late,
            reason=reason if command.late else "",
        )
        self.emit(fired)
        self.s.started_at = self.now
        self.request_plan(replan=False)

    def on_plan(self, answer: PlanProduced) -> None:
        self.record_usage("planner", answer.usage)
        if self.s.status not in PLANNING or stale(answer.request_id, self.s.in_flight):
            return  # an answer to a request that was overtaken (a re-plan, a pause)
        self.s.in_flight = ""
        problem = plan_problem(answer.plan) if answer.plan is not None else None
        if answer.plan is None or problem is not None:
            reason = problem or answer.stuck_reason or ""
            self.agent_failed("planner", reason, unusable=answer.unusable or problem is not None)
            if self.s.status in PLANNING:
                self.request_plan(replan=self.s.plan is not None)
            return
        plan = answer.plan
        self.s.unusable_streak = 0
        self.take_plan(plan)
        self.emit(ev.PlanReady(summary=plan.summary, subtasks=_announced(plan)))
        if self.s.review_plan:
            self.set_status(TaskStatus.AWAITING_PLAN_REVIEW, "the plan waits for your review")
            return
        self.set_status(TaskStatus.EXECUTING)
        self.dispatch()

    def take_plan(self, plan: Plan) -> None:
        self.s.plan = plan
        self.s.subtasks = [
            SubtaskState(key=planned.id, planned=planned, position=position)
            for position, planned in enumerate(_in_order(plan))
        ]

    def edit_plan(self, command: EditPlan) -> None:
        if self.s.status != TaskStatus.AWAITING_PLAN_REVIEW:
            raise Refused(
                f"the plan is not waiting for your review (the task is {self.s.status.value})"
            )
        current = self.s.plan or Plan()
        plan = command.plan or current
        summary = current.summary if command.summary is None else command.summary
        plan = msgspec.structs.replace(plan, summary=summary)
        if not plan.subtasks:
            raise Refused("the plan has no subtask")
        if (problem := plan_problem(plan)) is not None:
            raise Refused(problem)
        if plan != self.s.plan:
            self.take_plan(plan)
            self.emit(ev.PlanEdited(summary=plan.summary, subtasks=_announced(plan)))
        if command.start:
            self.emit(ev.PlanAccepted(subtasks=len(plan.subtasks)))
            self.set_status(TaskStatus.EXECUTING)
            self.dispatch()


# --- pure helpers --------------------------------------------------------------------------


def _announced(plan: Plan) -> list[ev.PlannedSubtask]:
    return [
        ev.PlannedSubtask(id=s.id, title=s.title, depends_on=list(s.depends_on))
        for s in plan.subtasks
    ]


def plan_problem(plan: Plan) -> str | None:
    """Why a plan cannot be worked (repeated ids, unknown dependencies, a cycle), if it can't."""
    ids = [s.id for s in plan.subtasks]
    if len(set(ids)) != len(ids):
        return "the plan repeats a subtask id"
    for sub in plan.subtasks:
        unknown = set(sub.depends_on) - set(ids)
        if unknown or sub.id in sub.depends_on:
            return f"subtask {sub.id} depends on {', '.join(sorted(unknown)) or 'itself'}"
    try:
        TopologicalSorter({s.id: set(s.depends_on) for s in plan.subtasks}).prepare()
    except CycleError:
        return "the plan's dependencies go round in a circle"
    return None


def _in_order(plan: Plan) -> list[Any]:
    by_id = {s.id: s for s in plan.subtasks}
    order = TopologicalSorter({s.id: set(s.depends_on) for s in plan.subtasks}).static_order()
    return [by_id[sid] for sid in order]
