"""The orchestrator's state machine, fed agent answers directly: every stuck rule pauses the
task with its reason, and guidance resumes it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm.exc import StaleDataError

from troika_gateway.db.engine import create_engine, create_sessionmaker
from troika_gateway.db.models import File, Outbox, Task, table_of
from troika_gateway.db.models import Subtask as SubtaskRow
from troika_gateway.pipeline.batch import Batch, Upsert
from troika_gateway.pipeline.orchestrator import Orchestrator
from troika_gateway.pipeline.store import TaskStore
from troika_shared.messages import (
    Plan,
    PlanProduced,
    PlanRequested,
    ReviewRequested,
    ReviewVerdict,
    Revision,
    StepProposed,
    StepRequested,
    Subtask,
    SubtaskResult,
    ToolCall,
    ToolExecute,
    ToolOutcome,
    ToolResult,
    Usage,
    decode,
    derive_id,
    utcnow,
)

from .test_tasks import create

PLAN = Plan(subtasks=(Subtask(id="write", title="Write", acceptance_criteria=("done",)),))


class Driver:
    """Plays the agents' part against the real orchestrator and database."""

    def __init__(self, gateway, client, account, task_id: str) -> None:
        self.orchestrator = Orchestrator(gateway.app.state.sessionmaker, gateway.app.state.store)
        self.router = self.orchestrator.router()
        self.gateway = gateway
        self.client = client
        self.account = account
        self.task_id = task_id
        self.sent = 0

    async def commands(self, kind: type) -> list:
        async with self.gateway.app.state.sessionmaker() as db:
            rows = await db.scalars(
                select(Outbox).where(Outbox.task_id == self.task_id).order_by(Outbox.created_at)
            )
            return [m for m in (decode(r.payload) for r in rows) if isinstance(m, kind)]

    async def answer(self, cause, message_type, **fields):
        self.sent += 1
        if message_type is not ToolResult:  # answers to a request name it
            fields.setdefault("request_id", cause.id)
        message = message_type(
            id=derive_id(cause.id, "answer", self.sent), correlation_id=self.task_id, **fields
        )
        await self.router.dispatch(message)
        return message

    async def task(self) -> dict:
        return (
            await self.client.get(f"/tasks/{self.task_id}", headers=self.account.headers)
        ).json()

    async def plan(self, plan: Plan = PLAN, **fields) -> None:
        [request] = (await self.commands(PlanRequested))[-1:]
        await self.answer(request, PlanProduced, plan=plan, **fields)

    async def last_step(self) -> StepRequested:
        return (await self.commands(StepRequested))[-1]

    async def propose(self, *calls: ToolCall) -> None:
        step = await self.last_step()
        await self.answer(step, StepProposed, subtask_id=step.subtask_id, tool_calls=calls)

    async def respond(self, decision: str = "approve") -> list[dict]:
        pending = (
            await self.client.get("/interactions/pending", headers=self.account.headers)
        ).json()
        for interaction in pending:
            response = await self.client.post(
                f"/interactions/{interaction['id']}/respond",
                headers=self.account.headers,
                json={"decision": decision},
            )
            assert response.status_code == 200, response.text
        return pending

    async def run_tools(self, *, ok: bool = True) -> None:
        for execute in await self.commands(ToolExecute):
            await self.answer(
                execute,
                ToolResult,
                subtask_id=execute.subtask_id,
                key=execute.call.key,
                outcome=ToolOutcome(
                    ok=ok, output="done" if ok else "", error=None if ok else "boom"
                ),
            )

    async def finish(self) -> None:
        step = await self.last_step()
        await self.answer(
            step, StepProposed, subtask_id=step.subtask_id, result=SubtaskResult(summary="finished")
        )


@pytest.fixture
async def driver(gateway, client, alice):
    async def start(**task_fields) -> Driver:
        task = await create(client, alice, "Write a report", **task_fields)
        return Driver(gateway, client, alice, task["id"])

    return start


def call(n: int = 1, path: str | None = None) -> ToolCall:
    args = {"path": path or f"f{n}.md"}
    return ToolCall(key=derive_id("call", str(args)), tool="read_file", arguments=args)


async def test_the_happy_path_plans_executes_reviews_and_completes(driver) -> None:
    d = await driver()
    await d.plan(usage=(Usage(model="m", prompt_tokens=10, completion_tokens=5, cost_usd=0.01),))
    assert (await d.task())["status"] == "executing"
    await d.propose(call(1))
    assert (await d.task())["status"] == "awaiting_approval"
    [approval] = await d.respond("approve")
    assert approval["prompt"]["tool"] == "read_file"
    assert approval["prompt"]["arguments"] == {"path": "f1.md"}
    await d.run_tools()
    step = await d.last_step()
    assert [e.call.tool for e in step.transcript] == ["read_file"]  # the executor sees the outcome
    await d.finish()
    [review] = await d.commands(ReviewRequested)
    assert review.results["write"].summary == "finished"
    await d.answer(review, ReviewVerdict, approved=True, summary="Good.")
    task = await d.task()
    assert (task["status"], task["result"]) == ("completed", "Good.")
    assert task["cost"] == {
        "calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.01,
    }


async def test_each_process_sees_the_changes_another_process_made(driver, gateway) -> None:
    # The API and the worker each keep the rows of the tasks they change: one that changed the
    # task since must not work from what it kept.
    d = await driver()
    await d.plan()
    store = gateway.app.state.store
    worker = TaskStore(store.settings, store.publisher, files=store.files)
    elsewhere = Orchestrator(gateway.app.state.sessionmaker, worker).router()
    d.router = elsewhere
    await d.propose(call(1), call(2))  # another process: the API's store kept the plan's rows
    [first, second] = await d.respond("approve")  # the API's store reads them again
    assert {first["prompt"]["arguments"]["path"], second["prompt"]["arguments"]["path"]} == {
        "f1.md",
        "f2.md",
    }
    await d.run_tools()  # the worker's store kept the calls as proposed: the approvals count
    step = await d.last_step()
    assert [e.outcome.ok for e in step.transcript] == [True, True]
    assert (await d.task())["status"] == "executing"


async def test_the_next_step_lists_files_uploaded_or_written_since_the_last(
    driver, gateway, client, alice
) -> None:
    # A process keeps the files it last saw with the task's rows (here the answers go through
    # the API's own store): an upload made while the task runs, and a file a tool wrote, must
    # both reach the next step, and a file the tool named but did not leave must not stay.
    d = await driver()
    await d.plan()
    assert (await d.last_step()).files == ()
    await d.propose(call(1))
    await d.respond()
    uploaded = await client.post(
        f"/tasks/{d.task_id}/files",
        headers=alice.headers,
        files={"files": ("brief.txt", b"the brief", "text/plain")},
    )
    assert uploaded.status_code == 201, uploaded.text
    (gateway.settings.data_dir / "workspaces" / d.task_id / "f1.md").write_text("# Notes\n")
    [execute] = await d.commands(ToolExecute)
    outcome = ToolOutcome(ok=True, output="written", files=("f1.md", "ghost.md"))
    await d.answer(
        execute, ToolResult, subtask_id=execute.subtask_id, key=execute.call.key, outcome=outcome
    )
    # the step asked for in the same change names what the tool said it wrote
    assert (await d.last_step()).files == ("brief.txt", "f1.md", "ghost.md")
    await d.propose(call(2))
    await d.respond()
    await d.run_tools()
    # later steps name what is recorded: the file the tool did not leave is not there
    assert (await d.last_step()).files == ("brief.txt", "f1.md")


async def test_approvals_of_one_task_answered_at_once_all_go_through(driver, client, alice):
    d = await driver()
    await d.plan()
    await d.propose(call(1), call(2), call(3), call(4))
    pending = (await client.get("/interactions/pending", headers=alice.headers)).json()
    assert len(pending) == 4
    answers = await asyncio.gather(*(
        client.post(f"/interactions/{p['id']}/respond", headers=alice.headers,
                    json={"decision": "approve"})
        for p in pending
    ))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    executes = await d.commands(ToolExecute)
    assert sorted(e.call.arguments["path"] for e in executes) == [
        "f1.md",
        "f2.md",
        "f3.md",
        "f4.md",
    ]
    assert len({e.id for e in executes}) == 4
    log = (await client.get(f"/tasks/{d.task_id}/events", headers=alice.headers)).json()["events"]
    assert [e["kind"] for e in log].count("tool.approved") == 4
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))


async def test_a_redelivered_answer_is_applied_once(driver) -> None:
    d = await driver()
    [request] = await d.commands(PlanRequested)
    answer = PlanProduced(id="fixed-id", correlation_id=d.task_id, request_id=request.id, plan=PLAN)
    await d.router.dispatch(answer)
    await d.router.dispatch(answer)
    assert len(await d.commands(StepRequested)) == 1
    assert request.correlation_id == d.task_id


async def test_a_planner_that_cannot_proceed_pauses_and_guidance_replans(
    driver, client, alice
) -> None:
    d = await driver()
    await d.plan(plan=None, stuck_reason="Which Tesla do you mean?")
    task = await d.task()
    assert (task["status"], task["status_reason"]) == (
        "needs_guidance",
        "the planner cannot proceed: Which Tesla do you mean?",
    )
    answered = await client.post(
        f"/tasks/{d.task_id}/guidance",
        headers=alice.headers,
        json={"action": "continue", "text": "The company"},
    )
    assert answered.json()["status"] == "planning"
    latest = (await d.commands(PlanRequested))[-1]
    assert latest.guidance == ("The company",)  # the person's words reach the planner


NO_TITLE = "the model's answer was not usable: subtasks.0.title: Field required"


async def test_two_unusable_answers_in_a_row_pause(driver) -> None:
    d = await driver()
    await d.plan(plan=None, stuck_reason=NO_TITLE, unusable=True)
    assert (await d.task())["status"] != "needs_guidance"
    assert len(await d.commands(PlanRequested)) == 2  # asked again
    await d.plan(plan=None, stuck_reason=NO_TITLE, unusable=True)
    task = await d.task()
    assert task["status"] == "needs_guidance"
    assert task["status_reason"] == (
        "the planner's answer could not be used 2 times in a row: its answer left out the title"
    )
    events = (await d.client.get(f"/tasks/{d.task_id}/events", headers=d.account.headers)).json()[
        "events"
    ]
    [unusable, _] = [e["data"] for e in events if e["kind"] == "agent.unusable_answer"]
    assert (unusable["said"], unusable["reason"]) == ("its answer left out the title", NO_TITLE)
    [paused] = [e["data"] for e in events if e["kind"] == "task.needs_guidance"]
    assert paused["evidence"]["last_error"] == NO_TITLE  # the exact words, for the curious


async def test_three_failed_tool_calls_in_a_row_pause(driver) -> None:
    d = await driver()
    await d.plan()
    for n in range(1, 4):
        await d.propose(call(n))
        await d.respond()
        await d.run_tools(ok=False)
    task = await d.task()
    assert (task["status"], task["status_reason"]) == (
        "needs_guidance",
        "3 tool calls failed in a row",
    )


async def test_the_same_call_proposed_three_times_pauses(driver) -> None:
    d = await driver()
    await d.plan()
    await d.propose(call(1))
    await d.respond()
    await d.run_tools()
    await d.propose(call(1))
    await d.propose(call(1))
    task = await d.task()
    assert task["status"] == "needs_guidance"
    assert task["status_reason"] == "the executor proposed the same read_file call 3 times"


async def test_three_revision_rounds_pause(driver) -> None:
    d = await driver()
    await d.plan()
    for _ in range(3):
        await d.finish()
        review = (await d.commands(ReviewRequested))[-1]
        await d.answer(
            review,
            ReviewVerdict,
            approved=False,
            revisions=(Revision(subtask_id="write", problem="thin"),),
        )
    task = await d.task()
    assert (task["status"], task["status_reason"]) == (
        "needs_guidance",
        "the reviewer sent work back 3 times",
    )
    steps = await d.commands(StepRequested)
    assert steps[-1].revision_notes == ("thin", "thin")


async def test_the_step_budget_pauses(driver) -> None:
    d = await driver(budget={"max_steps": 2})
    await d.plan()
    await d.propose(call(1))
    await d.respond()
    await d.run_tools()
    await d.propose(call(2))
    await d.respond()
    await d.run_tools()
    task = await d.task()
    assert (task["status"], task["status_reason"]) == (
        "needs_guidance",
        "the step budget of 2 steps is used up",
    )


async def test_the_token_budget_pauses(driver) -> None:
    d = await driver(budget={"max_tokens": 100})
    await d.plan(usage=(Usage(model="m", prompt_tokens=90, completion_tokens=20),))
    task = await d.task()
    assert (task["status"], task["status_reason"]) == (
        "needs_guidance",
        "the token budget of 100 tokens is used up",
    )


async def test_an_executor_that_is_stuck_pauses_and_continue_resumes_the_subtask(
    driver, client, alice
) -> None:
    d = await driver()
    await d.plan()
    step = await d.last_step()
    await d.answer(step, StepProposed, subtask_id="write", stuck_reason="I need John's address")
    task = await d.task()
    assert task["status_reason"] == "the executor cannot proceed: I need John's address"
    await client.post(
        f"/tasks/{d.task_id}/guidance",
        headers=alice.headers,
        json={"action": "continue", "text": "john@example.com"},
    )
    resumed = await d.last_step()
    assert resumed.id != step.id
    assert resumed.guidance == ("john@example.com",)
    assert (await d.task())["status"] == "executing"


async def test_answers_for_a_cancelled_task_change_nothing(driver, client, alice) -> None:
    d = await driver()
    await client.post(f"/tasks/{d.task_id}/cancel", headers=alice.headers)
    await d.plan()
    task = await d.task()
    assert task["status"] == "cancelled"
    assert await d.commands(StepRequested) == []


async def test_a_file_an_agent_wrote_in_a_folder_can_be_downloaded(
    driver, gateway, client, alice
) -> None:
    d = await driver()
    await d.plan()
    await d.propose(call(1, "notes/summary.md"))
    await d.respond()
    folder = gateway.settings.data_dir / "workspaces" / d.task_id / "notes"
    folder.mkdir(parents=True)
    (folder / "summary.md").write_text("# Summary\n")
    (gateway.settings.data_dir / "secret").write_text("do not serve")
    [execute] = await d.commands(ToolExecute)
    outcome = ToolOutcome(ok=True, output="written", files=("notes/summary.md",))
    await d.answer(
        execute, ToolResult, subtask_id=execute.subtask_id, key=execute.call.key, outcome=outcome
    )
    assert [f["name"] for f in (await d.task())["files"]] == ["notes/summary.md"]
    url = f"/tasks/{d.task_id}/files"
    download = await client.get(f"{url}/notes/summary.md", headers=alice.headers)
    assert download.status_code == 200
    assert download.text == "# Summary\n"
    assert 'filename="summary.md"' in download.headers["content-disposition"]
    for escape in ("notes/..%2F..%2F..%2Fsecret", "notes/%2e%2e/%2e%2e/%2e%2e/secret", "notes/.x"):
        refused = await client.get(f"{url}/{escape}", headers=alice.headers)
        assert 400 <= refused.status_code < 500, escape
        assert "do not serve" not in refused.text
    missing = await client.get(f"{url}/notes/other.md", headers=alice.headers)
    assert missing.status_code == 404


async def test_a_file_written_again_is_listed_once_as_it_is_now(driver, gateway, client, alice):
    d = await driver()
    await d.plan()
    report = gateway.settings.data_dir / "workspaces" / d.task_id / "report.md"
    report.parent.mkdir(parents=True)
    listed = []
    for n, content in enumerate(("draft\n", "final version\n"), start=1):
        args = {"path": "report.md", "content": content}
        await d.propose(ToolCall(key=derive_id("call", n), tool="write_file", arguments=args))
        await d.respond()
        report.write_text(content)
        execute = (await d.commands(ToolExecute))[-1]
        outcome = ToolOutcome(ok=True, output="written", files=("report.md", "report.md"))
        await d.answer(
            execute, ToolResult, subtask_id=execute.subtask_id, key=execute.call.key,
            outcome=outcome,
        )  # fmt: skip
        listed.append((await d.task())["files"])
    [first], [second] = listed
    assert first["size"] == len("draft\n")
    assert second["size"] == len("final version\n")
    assert second["name"] == "report.md"
    assert second["origin"] == "agent"
    assert second["created_at"] == first["created_at"]  # the same file, written again
    assert second["updated_at"] > first["updated_at"]
    download = await client.get(f"/tasks/{d.task_id}/files/report.md", headers=alice.headers)
    assert download.text == "final version\n"


async def test_answers_apply_after_the_database_dropped_the_workers_connections(
    gateway, client, alice, settings
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop connections")
    # the worker's engine: no ping before each use, a lost connection is retried instead
    engine = create_engine(settings.database_url, pre_ping=False)
    try:
        task = await create(client, alice, "Write a report")
        driver = Driver(gateway, client, alice, task["id"])
        driver.orchestrator = Orchestrator(create_sessionmaker(engine), gateway.app.state.store)
        driver.router = driver.orchestrator.router()
        await driver.plan()  # the pool now holds a connection
        assert await _drop_connections(settings.database_url) >= 1
        await driver.propose(call(1))
        assert (await driver.task())["status"] == "awaiting_approval"
    finally:
        await engine.dispose()


async def _drop_connections(database_url: str) -> int:
    """Ends every other session of the test database, as a server restart would."""
    admin = create_engine(database_url, pre_ping=False)
    try:
        async with admin.connect() as connection:
            return int(
                await connection.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )
    finally:
        await admin.dispose()


async def test_the_api_answers_after_the_database_dropped_its_connections(
    gateway, client, alice, settings
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop connections")
    task = await create(client, alice, "Write a report")  # the API's pool now holds connections
    assert await _drop_connections(settings.database_url) >= 1
    for _ in range(3):  # each a connection tested, found lost and replaced, or a new one
        shown = await client.get(f"/tasks/{task['id']}", headers=alice.headers)
        assert shown.status_code == 200, shown.text
        assert shown.json()["objective"] == "Write a report"


async def test_the_review_request_says_which_promised_files_are_missing_or_empty(
    driver, gateway
) -> None:
    d = await driver()
    write = Subtask(id="write", title="Write report.md and totals.csv",
                    acceptance_criteria=("notes.txt lists the sources",))  # fmt: skip
    plan = Plan(subtasks=(write,))
    await d.plan(plan)
    folder = gateway.settings.data_dir / "workspaces" / d.task_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text("# Report\n")
    (folder / "notes.txt").write_text("")
    step = await d.last_step()
    await d.answer(step, StepProposed, subtask_id="write",
                   result=SubtaskResult(summary="written", files=("report.md",)))  # fmt: skip
    [review] = await d.commands(ReviewRequested)
    assert (review.missing_files, review.empty_files) == (("totals.csv",), ("notes.txt",))
    assert review.evidence == {
        "notes.txt": "(the file is empty)",
        "report.md": "# Report\n",
        "totals.csv": "(the file does not exist)",
    }


async def test_a_change_to_a_task_another_writer_changed_since_writes_nothing(
    gateway, client, alice
) -> None:
    # The task's row is written with its version as read: a writer that read it before another
    # changed it must fail (and be run again), not overwrite what the other wrote.
    task = await create(client, alice, "Write a report")
    async with gateway.app.state.sessionmaker() as db:
        stale = await db.get(Task, task["id"])
        assert stale is not None
        stale.title = "Stale"
        renamed = await client.put(
            f"/tasks/{task['id']}", headers=alice.headers, json={"title": "Fresh"}
        )
        assert renamed.status_code == 200, renamed.text
        with pytest.raises(StaleDataError):
            await Batch().write(db, stale)
        await db.rollback()
    assert (await client.get(f"/tasks/{task['id']}", headers=alice.headers)).json()[
        "title"
    ] == "Fresh"


async def test_a_changed_task_row_is_written_once_and_left_clean(gateway, client, alice) -> None:
    task = await create(client, alice, "Write a report")
    async with gateway.app.state.sessionmaker() as db:
        row = await db.get(Task, task["id"])
        assert row is not None
        version = row.version
        row.title = "Renamed"
        await Batch().write(db, row)
        assert row.version == version + 1
        assert row not in db.dirty  # the session's flush has nothing left of it to write
        await db.commit()
    async with gateway.app.state.sessionmaker() as db:
        stored = await db.scalar(select(Task.version).where(Task.id == task["id"]))
    assert stored == version + 1  # the commit's flush did not write the row a second time
    shown = (await client.get(f"/tasks/{task['id']}", headers=alice.headers)).json()
    assert shown["title"] == "Renamed"


async def test_a_batch_writes_each_row_once_with_all_it_was_given(driver, gateway) -> None:
    # One statement writes each row once (PostgreSQL keeps one of two updates of a row in one
    # statement, and refuses two upserts of one key): what the batch was given for a row, on
    # either database, is what the row holds after.
    d = await driver()
    await d.plan()
    subtasks, files = table_of(SubtaskRow), table_of(File)
    record = Upsert(files, key=("task_id", "name"), sets=("size", "updated_at"))
    async with gateway.app.state.sessionmaker() as db:
        [row_id] = await db.scalars(select(subtasks.c.id).where(subtasks.c.task_id == d.task_id))
        task = await db.get(Task, d.task_id)
        assert task is not None
        task.title = "Renamed"
        batch = Batch()
        batch.update(subtasks, row_id, {"result": "first", "steps": 4})
        batch.update(subtasks, row_id, {"result": "second"})
        for size in (1, 2):
            batch.upsert(record, {
                "task_id": d.task_id, "name": "a.txt", "content_type": "text/plain", "size": size,
                "sha256": "0" * 64, "origin": "agent", "updated_at": utcnow(),
            })  # fmt: skip
        await batch.write(db, task)
        await db.commit()
    async with gateway.app.state.sessionmaker() as db:
        stored = (await db.execute(select(subtasks).where(subtasks.c.id == row_id))).one()
        sizes = (await db.scalars(select(files.c.size).where(files.c.task_id == d.task_id))).all()
    assert (stored.result, stored.steps) == ("second", 4)
    assert sizes == [2]
    assert (await d.task())["title"] == "Renamed"
