"""Scheduled tasks against real Redis (arq) and the database: on time, once, cancellable,
pausable, with the approval policies accepted when they were made."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import func, select

from troika_gateway.db.models import ScheduleRun, Task
from troika_gateway.scheduling.jobs import Jobs
from troika_gateway.scheduling.runner import Scheduler
from troika_gateway.scheduling.times import SystemClock
from troika_shared.messages import ToolCall, ToolExecute
from troika_testkit import scaled, wait_for

from .conftest import assert_problem
from .test_pipeline_rules import Driver
from .test_tasks import create


@dataclass
class FastClock:
    """A clock that runs ``speed`` times faster than the wall clock, from now on."""

    speed: float
    start: float = field(default_factory=time.time)
    base: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.base + timedelta(seconds=(time.time() - self.start) * self.speed)

    def seconds_until(self, moment: datetime) -> float:
        return (moment - self.now()).total_seconds() / self.speed


@pytest.fixture
def fast_settings(settings):
    return settings.model_copy(
        update={"schedule_poll_s": 0.05, "schedule_sweep_s": 0.5, "schedule_misfire_grace_s": 60}
    )


@pytest.fixture
async def scheduler(gateway, fast_settings):
    """Starts scheduler workers (as the gateway worker runs them) on a clock, with settings
    changed as asked; stops them after."""
    running: list[tuple[asyncio.Event, asyncio.Task, Jobs]] = []

    async def start(clock=None, **changes) -> Scheduler:
        clock = clock or SystemClock()
        gateway.app.state.clock = clock  # the API computes and queues on the same clock
        gateway.app.state.jobs.clock = clock
        settings = fast_settings.model_copy(update=changes)
        jobs = Jobs.connect(settings, clock)
        worker = Scheduler(
            gateway.app.state.sessionmaker, settings, gateway.app.state.store, jobs, clock
        )
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(worker.run(stop)), jobs))
        return worker

    yield start
    for stop, task, jobs in running:
        stop.set()
        await asyncio.wait_for(task, scaled(10))
        await jobs.close()


async def schedules(client, account) -> list[dict]:
    response = await client.get("/schedules", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def task_of(client, account, task_id) -> dict:
    return (await client.get(f"/tasks/{task_id}", headers=account.headers)).json()


async def runs(gateway, schedule_id: str) -> list[ScheduleRun]:
    async with gateway.app.state.sessionmaker() as db:
        rows = await db.scalars(
            select(ScheduleRun)
            .where(ScheduleRun.schedule_id == schedule_id)
            .order_by(ScheduleRun.due_at)
        )
        return list(rows)


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def assert_every_second_ran_once_or_was_missed(fired: list[ScheduleRun], grace_s: float) -> None:
    """The runs of an every-second schedule, in order, lost none and doubled none, whatever the
    pace: a run that started within the misfire grace ran as ``ran`` and the next second's run
    follows it; one that started later (a busy machine, to a clock this fast, looks like one
    that was not running) ran once, as ``ran_late``, for the seconds it missed, and the next
    run is the first second after it started."""
    assert len({r.due_at for r in fired}) == len(fired)
    assert len({r.task_id for r in fired}) == len(fired)  # each run is a task of its own
    grace = timedelta(seconds=grace_s)
    for run in fired:
        assert run.outcome == ("ran_late" if run.fired_at - run.due_at > grace else "ran"), run
    for before, after in pairwise(fired):
        if before.outcome == "ran":
            assert after.due_at == before.due_at + timedelta(seconds=1), (before, after)
        else:
            following = before.fired_at.replace(microsecond=0) + timedelta(seconds=1)
            assert after.due_at == following, (before, after)


BAD_SCHEDULES = [
    ({"run_at": "2020-01-01T09:00:00+00:00"}, "run_at"),
    ({"run_at": "2030-01-01T09:00:00"}, "timezone"),  # a wall time needs its zone
    ({"run_at": "2030-01-01T09:00:00", "timezone": "Mars/Olympus"}, "timezone"),
    ({"run_at": "9999-12-31T23:00:00", "timezone": "Etc/GMT+12"}, "run_at"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 9 * * *", "timezone": "Europe/Nowhere"}, "timezone"),
    ({"cron": "0 9 * * *", "timezone": "Europe"}, "timezone"),  # a folder of zones
    ({"cron": "0 9 30 2 *"}, "cron"),  # the 30th of February never comes
    ({"cron": "0 9 * * *", "run_at": "2030-01-01T09:00:00+00:00"}, "run_at"),
    ({"cron": "0 9 * * *", "until": "2020-01-01T00:00:00+00:00"}, "until"),
    ({"run_at": "2030-01-01T09:00:00+00:00", "max_runs": 3}, "until"),
    ({"cron": "0 9 * * *", "policies": {"format_disk": "allow"}}, "policies"),
    ({"cron": "0 9 * * *", "max_runs": 0}, "max_runs"),
    ({"cron": "0 9 * * *", "misfire": "sometimes"}, "misfire"),
]


async def test_bad_schedules_are_refused_and_create_nothing(gateway, client, alice) -> None:
    for schedule, wrong in BAD_SCHEDULES:
        response = await client.post(
            "/tasks", headers=alice.headers, json={"objective": "Weekly report", **schedule}
        )
        problem = assert_problem(response, 422)
        assert [error["field"] for error in problem["errors"]] == [wrong], (schedule, problem)
    assert (await client.get("/tasks", headers=alice.headers)).json()["total"] == 0
    assert await schedules(client, alice) == []
    assert await gateway.app.state.jobs.queued() == []


async def test_a_task_scheduled_two_seconds_ahead_starts_at_its_time(
    gateway, client, alice, scheduler
) -> None:
    await scheduler()
    ahead = scaled(2)  # time enough to create it and read it back before it starts
    asked = time.monotonic()
    run_at = datetime.now(UTC) + timedelta(seconds=ahead)
    task = await create(client, alice, "Morning briefing", run_at=run_at.isoformat())
    assert task["status"] == "scheduled"
    [schedule] = await schedules(client, alice)
    taken = time.monotonic() - asked
    assert schedule["kind"] == "once"
    assert schedule["next_task_id"] == task["id"]
    assert datetime.fromisoformat(schedule["next_run_at"]) == run_at.replace(
        microsecond=run_at.microsecond
    )
    assert ahead - taken <= schedule["seconds_until_next"] <= ahead

    async def started() -> bool:
        return (await task_of(client, alice, task["id"]))["status"] != "scheduled"

    await wait_for(started, timeout=10, what="the scheduled task to start")
    [run] = await runs(gateway, schedule["id"])
    assert run.outcome == "ran"
    # Never early, and on time: the queue is polled every 0.25 s (a loaded 2-core machine may
    # add a second or two; a schedule left to the 30-second sweep would be later still).
    assert timedelta(0) <= run.fired_at - run_at < timedelta(seconds=scaled(5))
    detail = await task_of(client, alice, task["id"])
    assert detail["status"] in ("queued", "planning")
    kinds = [e["kind"] for e in (await client.get(
        f"/tasks/{task['id']}/events", headers=alice.headers)).json()["events"]]  # fmt: skip
    assert kinds[-3:] == ["schedule.fired", "plan.requested", "task.status"]
    [finished] = await schedules(client, alice)
    assert (finished["status"], finished["next_run_at"], finished["runs"]) == ("finished", None, 1)


async def test_a_scheduled_task_starts_in_its_request_s_trace_linked_to_the_timer(
    spans, gateway, client, alice, scheduler
) -> None:
    await scheduler()
    run_at = datetime.now(UTC) + timedelta(seconds=scaled(1))
    task = await create(client, alice, "Morning briefing", run_at=run_at.isoformat())

    async def started() -> bool:
        # the timer's span ends after the firing's commit, once the next run is queued
        fired = any(s.name == "fire schedule" for s in spans.get_finished_spans())
        return fired and (await task_of(client, alice, task["id"]))["status"] != "scheduled"

    await wait_for(started, timeout=10, what="the scheduled task to start")
    ended = spans.get_finished_spans()
    [request] = [s for s in ended if s.name == "POST /tasks"]
    [fire] = [s for s in ended if s.name == "fire schedule"]
    assert fire.parent is None, "the timer's work is a trace of its own"
    assert [link.context.span_id for link in fire.links] == [request.context.span_id]
    # the task it starts goes on in the trace of the request that made it, linked to the timer
    [run] = [s for s in ended if s.name == "task fire"]
    assert run.parent.span_id == request.context.span_id
    assert [link.context.span_id for link in run.links] == [fire.context.span_id]
    assert run.attributes["troika.task_id"] == task["id"]


async def test_a_cron_schedule_fires_on_consecutive_minutes_each_a_new_task(
    gateway, client, alice, scheduler
) -> None:
    # A minute passes in two seconds; a grace of a day of this clock (48 minutes of the wall
    # clock's) keeps a busy machine's lag from reading as a time missed while nothing ran.
    await scheduler(FastClock(speed=30), schedule_misfire_grace_s=24 * 3600)
    first = await create(client, alice, "Check the queue", cron="* * * * *", max_runs=3)
    [schedule] = await schedules(client, alice)
    assert schedule["description"] == "Every minute"

    async def three() -> bool:
        return len(await runs(gateway, schedule["id"])) == 3

    await wait_for(three, timeout=30, what="three runs")
    fired = await runs(gateway, schedule["id"])
    assert [r.outcome for r in fired] == ["ran"] * 3
    assert [b.due_at - a.due_at for a, b in pairwise(fired)] == [timedelta(minutes=1)] * 2
    assert all(r.due_at.second == 0 for r in fired)
    assert fired[0].task_id == first["id"]
    assert len({r.task_id for r in fired}) == 3  # each run is a task of its own
    async with gateway.app.state.sessionmaker() as db:
        linked = await db.scalar(
            select(func.count()).select_from(Task).where(Task.schedule_id == schedule["id"])
        )
    assert linked == 3  # and none waits: the run count is reached
    [done] = await schedules(client, alice)
    assert (done["status"], done["runs"], done["next_task_id"]) == ("finished", 3, None)
    assert done["last_run"]["task_id"] == fired[-1].task_id
    # the schedule's runs, and only them, as a list of tasks
    await create(client, alice, "Something else")
    listed = await client.get("/tasks", headers=alice.headers, params={"schedule": schedule["id"]})
    assert {t["id"] for t in listed.json()["items"]} == {r.task_id for r in fired}
    assert listed.json()["total"] == 3


async def test_a_cancelled_schedule_never_fires_and_its_task_shows_cancelled(
    gateway, client, alice, bob, scheduler
) -> None:
    await scheduler()
    task = await create(client, alice, "Send the invoice", run_at=soon(scaled(1.5)))
    [schedule] = await schedules(client, alice)
    assert len(await gateway.app.state.jobs.queued()) == 1
    assert_problem(await client.delete(f"/schedules/{schedule['id']}", headers=bob.headers), 404)
    cancelled = await client.delete(f"/schedules/{schedule['id']}", headers=alice.headers)
    assert cancelled.status_code == 204
    await asyncio.sleep(scaled(2.5))  # past its time: it would have fired by now
    assert await runs(gateway, schedule["id"]) == []
    # Its job is withdrawn; one the scheduler's sweep planned again just before (having read
    # the schedule still active) fires, finds it cancelled, does nothing and is gone too.
    assert await gateway.app.state.jobs.queued() == []
    detail = await task_of(client, alice, task["id"])
    assert (detail["status"], detail["status_reason"]) == (
        "cancelled",
        "the schedule was cancelled",
    )
    [shown] = await schedules(client, alice)
    assert (shown["status"], shown["next_run_at"]) == ("cancelled", None)
    again = await client.delete(f"/schedules/{schedule['id']}", headers=alice.headers)
    assert again.status_code == 204


async def test_cancelling_the_waiting_task_cancels_its_schedule(gateway, client, alice) -> None:
    task = await create(client, alice, "Tidy the inbox", cron="0 7 * * 1-5")
    response = await client.post(f"/tasks/{task['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200, response.text
    [schedule] = await schedules(client, alice)
    assert (schedule["status"], schedule["next_run_at"]) == ("cancelled", None)
    assert await gateway.app.state.jobs.queued() == []


async def test_a_repeating_schedule_pauses_and_resumes(gateway, client, alice) -> None:
    task = await create(client, alice, "Weekly digest", cron="0 9 * * 1", timezone="Europe/Berlin")
    [schedule] = await schedules(client, alice)
    sid = schedule["id"]
    paused = await client.post(f"/schedules/{sid}/pause", headers=alice.headers)
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["next_run_at"]) == ("paused", None)
    assert await gateway.app.state.jobs.queued() == []
    assert (await task_of(client, alice, task["id"]))["status"] == "scheduled"
    resumed = await client.post(f"/schedules/{sid}/resume", headers=alice.headers)
    assert resumed.json()["status"] == "active"
    monday = datetime.fromisoformat(resumed.json()["next_run_at"]).astimezone(
        SystemClock().now().tzinfo
    )
    assert monday.weekday() == 0
    assert len(await gateway.app.state.jobs.queued()) == 1
    once = await create(client, alice, "One time", run_at=soon(3600))
    sid_once = next(s["id"] for s in await schedules(client, alice) if s["kind"] == "once")
    assert once["status"] == "scheduled"
    assert_problem(
        await client.post(f"/schedules/{sid_once}/pause", headers=alice.headers), 409, "repeating"
    )


async def test_scheduled_runs_decide_calls_with_the_policies_accepted_when_scheduled(
    gateway, client, alice, scheduler
) -> None:
    worker = await scheduler()
    task = await create(
        client, alice, "Nightly notes", cron="0 3 * * *", policies={"create_file": "allow"}
    )
    # Later the person allows read_file for all tasks; the schedule keeps what it was given.
    later = await client.put("/policies/read_file", headers=alice.headers, json={"mode": "allow"})
    assert later.status_code == 200, later.text
    [schedule] = await schedules(client, alice)
    assert await worker.fire(schedule["id"], datetime.fromisoformat(schedule["next_run_at"])) == (
        "ran"
    )  # a fire time reached (here: called directly, as its job would)
    driver = Driver(gateway, client, alice, task["id"])
    await driver.plan()
    await driver.propose(
        ToolCall(key="w1", tool="create_file", arguments={"path": "n.md", "content": "x"}),
        ToolCall(key="r1", tool="read_file", arguments={"path": "n.md"}),
    )
    [execute] = await driver.commands(ToolExecute)
    assert execute.call.tool == "create_file"  # allowed when scheduled: it ran unasked
    pending = (await client.get("/interactions/pending", headers=alice.headers)).json()
    assert [p["prompt"]["tool"] for p in pending] == ["read_file"]  # anything else waits


async def test_two_workers_fire_one_schedule_fifty_times_without_a_duplicate(
    gateway, client, alice, fast_settings, scheduler
) -> None:
    clock = FastClock(speed=25)
    await scheduler(clock)
    await scheduler(clock)
    await create(client, alice, "Tick", cron="* * * * * *", max_runs=50)
    [schedule] = await schedules(client, alice)

    async def finished() -> bool:
        [shown] = await schedules(client, alice)
        return shown["status"] == "finished"

    # The 50th run finishes the schedule in the same write: nothing can fire after it.
    await wait_for(finished, timeout=60, what="fifty runs")
    [done] = await schedules(client, alice)
    assert (done["runs"], done["next_run_at"], done["next_task_id"]) == (50, None, None)
    fired = await runs(gateway, schedule["id"])
    assert len(fired) == 50
    assert_every_second_ran_once_or_was_missed(fired, fast_settings.schedule_misfire_grace_s)
    async with gateway.app.state.sessionmaker() as db:
        tasks = await db.scalar(
            select(func.count()).select_from(Task).where(Task.schedule_id == schedule["id"])
        )
    assert tasks == 50  # none waits: the run count is reached


async def test_a_schedule_made_while_redis_is_down_is_queued_by_the_worker_later(
    gateway, client, alice, fast_settings, scheduler
) -> None:
    reachable = gateway.app.state.jobs
    gateway.app.state.jobs = Jobs.connect(
        fast_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), SystemClock()
    )
    try:
        task = await create(client, alice, "Reminder", run_at=soon(1))
    finally:
        await gateway.app.state.jobs.close()
        gateway.app.state.jobs = reachable
    assert task["status"] == "scheduled"
    assert await reachable.queued() == []
    await scheduler()  # its reconciliation finds the schedule without a job

    async def started() -> bool:
        return (await task_of(client, alice, task["id"]))["status"] != "scheduled"

    await wait_for(started, timeout=10, what="the schedule to fire")
    [schedule] = await schedules(client, alice)
    assert schedule["last_run"]["outcome"] == "ran"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # Redis's part, not the DB's
async def test_a_scheduler_stopped_at_any_moment_stops_and_leaves_no_connection_open(
    gateway, fast_settings
) -> None:
    # Stopped at moments spread over its first polls, some of them while it takes due jobs.
    state, clock = gateway.app.state, SystemClock()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for moment in range(16):
            jobs = Jobs.connect(fast_settings, clock)
            for n in range(3):  # for no schedule: each is taken, then finds nothing to run
                await jobs.plan(f"gone-{moment}-{n}", clock.now())
            stop = asyncio.Event()
            worker = Scheduler(state.sessionmaker, fast_settings, state.store, jobs, clock)
            running = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(moment / 800)
            stop.set()
            stopped, _ = await asyncio.wait({running}, timeout=scaled(5))
            assert stopped, f"the scheduler stopped {moment / 800:.3f} s in is still running"
            await jobs.close()
            gc.collect()  # a connection never returned warns as it is freed
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


@dataclass
class StoppedClock:
    """A clock that stays at ``at``."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def seconds_until(self, moment: datetime) -> float:
        return (moment - self.at).total_seconds()


async def test_the_misfire_grace_is_the_schedulers_own_setting(
    gateway, client, alice, scheduler
) -> None:
    # The gateway's own settings keep a grace of a minute; this scheduler's is a day.
    worker = await scheduler(schedule_misfire_grace_s=24 * 3600)
    await create(client, alice, "Nightly notes", cron="0 3 * * *")
    [schedule] = await schedules(client, alice)
    due = datetime.fromisoformat(schedule["next_run_at"])
    worker.clock = StoppedClock(due + timedelta(hours=1))  # an hour late, well within a day
    assert await worker.fire(schedule["id"], due) == "ran"


async def test_files_attached_to_a_repeating_schedule_go_with_every_run(
    gateway, client, alice, scheduler
) -> None:
    worker = await scheduler()
    first = await create(client, alice, "Summarise the sales", cron="0 7 * * *")
    uploaded = await client.post(
        f"/tasks/{first['id']}/files",
        headers=alice.headers,
        files={"files": ("sales.csv", b"region,amount\nNorth,10\n", "text/csv")},
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    [schedule] = await schedules(client, alice)
    due = datetime.fromisoformat(schedule["next_run_at"])
    assert await worker.fire(schedule["id"], due) == "ran"
    [after] = await schedules(client, alice)
    following = after["next_task_id"]
    assert following not in (None, first["id"])
    files = (await client.get(f"/tasks/{following}/files", headers=alice.headers)).json()
    assert [(f["name"], f["origin"], f["size"]) for f in files] == [("sales.csv", "upload", 23)]
    download = await client.get(f"/tasks/{following}/files/sales.csv", headers=alice.headers)
    assert download.content == b"region,amount\nNorth,10\n"
