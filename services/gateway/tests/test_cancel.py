"""Cancelling, from each way in: the API, a guidance answer, and deleting the task's schedule.

Each stops what the executors still hold for the task (its stop is on the bus, where they look
before running a call), closes the approvals it was waiting for, and announces the new status
on the live feed. And the watchdog: a task stranded with nothing in flight is found, logged and
given what it was missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from troika_gateway.db.models import Interaction, Subtask
from troika_gateway.pipeline.watchdog import Watchdog
from troika_shared.messages import Plan, StepProposed, StepRequested
from troika_shared.messages import Subtask as PlannedSubtask

from .test_live import open_live, receive
from .test_pipeline_rules import Driver, call
from .test_tasks import create

TWO = Plan(
    subtasks=(PlannedSubtask(id="a", title="A"), PlannedSubtask(id="b", title="B")),
    summary="two",
)


async def live_status(socket, task_id: str) -> dict:
    """The next status the live feed announces for the task."""
    while True:
        message = await receive(socket)
        if message.get("task_id") == task_id and message.get("kind") == "task.status":
            return message["data"]


async def interactions(d: Driver) -> list[str]:
    async with d.gateway.app.state.sessionmaker() as db:
        return list(
            await db.scalars(select(Interaction.status).where(Interaction.task_id == d.task_id))
        )


@pytest.fixture
async def waiting(gateway, client, alice) -> Driver:
    """A task of two subtasks: one call waits for approval."""
    task = await create(client, alice, "Write two notes")
    d = Driver(gateway, client, alice, task["id"])
    await d.plan(TWO)
    step = next(s for s in await d.commands(StepRequested) if s.subtask_id == "a")
    await d.answer(step, StepProposed, subtask_id="a", tool_calls=(call(1),))
    assert (await d.task())["status"] == "awaiting_approval"
    return d


async def test_cancelling_through_the_api_stops_closes_and_announces(waiting, gateway) -> None:
    d = waiting
    socket = await open_live(gateway, d.account)
    try:
        response = await d.client.post(f"/tasks/{d.task_id}/cancel", headers=d.account.headers)
        assert response.status_code == 200
        status = await live_status(socket, d.task_id)
    finally:
        await socket.close()
    assert (status["status"], status["previous"]) == ("cancelled", "awaiting_approval")
    assert await gateway.app.state.bus.stopped(d.task_id)
    assert await interactions(d) == ["cancelled"]
    pending = await d.client.get("/interactions/pending", headers=d.account.headers)
    assert pending.json() == []


async def test_cancelling_in_a_guidance_answer_stops_closes_and_announces(waiting, gateway) -> None:
    d = waiting
    step = next(s for s in await d.commands(StepRequested) if s.subtask_id == "b")
    await d.answer(step, StepProposed, subtask_id="b", stuck_reason="the site needs a login")
    assert (await d.task())["status"] == "needs_guidance"
    assert await interactions(d) == ["cancelled"]  # the pause closed the open approval at once
    pending = await d.client.get("/interactions/pending", headers=d.account.headers)
    assert pending.json() == []
    socket = await open_live(gateway, d.account)
    try:
        response = await d.client.post(
            f"/tasks/{d.task_id}/guidance", headers=d.account.headers, json={"action": "cancel"}
        )
        assert response.status_code == 200, response.text
        status = await live_status(socket, d.task_id)
    finally:
        await socket.close()
    assert (status["status"], status["previous"]) == ("cancelled", "needs_guidance")
    assert await gateway.app.state.bus.stopped(d.task_id)
    assert await interactions(d) == ["cancelled"]


async def test_deleting_a_schedule_stops_its_task_and_announces(gateway, client, alice) -> None:
    run_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    task = await create(client, alice, "Morning briefing", run_at=run_at)
    [schedule] = (await client.get("/schedules", headers=alice.headers)).json()
    socket = await open_live(gateway, alice)
    try:
        response = await client.delete(f"/schedules/{schedule['id']}", headers=alice.headers)
        assert response.status_code == 204
        status = await live_status(socket, task["id"])
    finally:
        await socket.close()
    assert (status["status"], status["previous"]) == ("cancelled", "scheduled")
    assert await gateway.app.state.bus.stopped(task["id"])
    detail = (await client.get(f"/tasks/{task['id']}", headers=alice.headers)).json()
    assert (detail["status"], detail["status_reason"]) == (
        "cancelled",
        "the schedule was cancelled",
    )


async def test_the_watchdog_recovers_a_subtask_stranded_with_nothing_in_flight(
    waiting, gateway
) -> None:
    d = waiting
    async with gateway.app.state.sessionmaker() as db:  # strand b: running, nothing asked
        await db.execute(
            update(Subtask)
            .where(Subtask.task_id == d.task_id, Subtask.key == "b")
            .values(in_flight="")
        )
        await db.commit()
    before = len([s for s in await d.commands(StepRequested) if s.subtask_id == "b"])
    watchdog = Watchdog(gateway.app.state.sessionmaker, gateway.settings, gateway.app.state.store)
    assert await watchdog.sweep(idle_s=0) == [d.task_id]
    steps = [s for s in await d.commands(StepRequested) if s.subtask_id == "b"]
    assert len(steps) == before + 1
    log = (await d.client.get(f"/tasks/{d.task_id}/events", headers=d.account.headers)).json()[
        "events"
    ]
    repaired = [e for e in log if e["kind"] == "task.repaired"]
    assert [e["data"] for e in repaired] == [{"missing": ["a step of b"]}]
    assert await watchdog.sweep(idle_s=0) == []  # sound again: nothing more to do
    assert (await d.task())["status"] == "awaiting_approval"  # the approval still waits
