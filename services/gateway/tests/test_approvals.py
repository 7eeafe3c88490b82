"""Approvals: a decision covers exactly the action the person saw; forms, edits, policies,
expiry and the audit trail, against the real orchestrator and database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import Field
from sqlalchemy import select, update

from troika_gateway.db.models import Interaction, Task
from troika_gateway.db.models import ToolCall as ToolCallRow
from troika_gateway.pipeline.expiry import Expirer
from troika_shared import catalogue
from troika_shared.approvals import call_key, verify_approval
from troika_shared.browser import SEALED, open_typed
from troika_shared.messages import StepRequested, TaskStopped, ToolCall, ToolExecute

from .conftest import assert_problem
from .test_pipeline_rules import Driver, call
from .test_tasks import create


class NotifyArgs(catalogue.ToolArgs):
    """Sends a short message to someone."""

    recipient: str = Field(min_length=3, description="Who gets it.")
    message: str = Field(max_length=500, description="What it says.")
    urgent: bool = Field(default=False, description="Marks it urgent.")


NOTIFY = catalogue.ToolDefinition(
    "notify",
    "Send a short message to someone.",
    NotifyArgs,
    "external",
    input_fields=("recipient", "message"),
)


@pytest.fixture
def notify_tool(monkeypatch):
    monkeypatch.setitem(catalogue.CATALOGUE, "notify", NOTIFY)
    return NOTIFY


@pytest.fixture
async def d(gateway, client, alice) -> Driver:
    task = await create(client, alice, "Write a report")
    driver = Driver(gateway, client, alice, task["id"])
    await driver.plan()
    return driver


async def pending(d: Driver) -> list[dict]:
    url = "/interactions/pending"
    return (
        await d.client.get(url, headers=d.account.headers, params={"task_id": d.task_id})
    ).json()


async def answer(d: Driver, interaction_id: str, **body):
    headers = {**d.account.headers, "X-Troika-Client": "test-suite"}
    return await d.client.post(
        f"/interactions/{interaction_id}/respond", headers=headers, json=body
    )


async def audit(d: Driver) -> list[dict]:
    return (await d.client.get(f"/tasks/{d.task_id}/audit", headers=d.account.headers)).json()


async def test_a_denied_call_never_runs_and_the_agent_hears_why(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    response = await answer(d, approval["id"], decision="deny", reason="not that file")
    assert response.status_code == 200
    assert response.json()["status"] == "denied", "the answer shows the approval as answered"
    assert await d.commands(ToolExecute) == []
    step = await d.last_step()  # the executor is asked again, with the refusal in its transcript
    assert step.transcript[-1].outcome.error == "the person denied this call: not that file"
    [entry] = await audit(d)
    assert (entry["action"], entry["tool"], entry["reason"]) == (
        "denied",
        "read_file",
        "not that file",
    )
    assert entry["actor"].startswith("user: ")
    assert entry["client"]["name"] == "test-suite"


async def test_approving_twice_at_once_runs_the_call_once(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    first, second = await asyncio.gather(
        answer(d, approval["id"], decision="approve"), answer(d, approval["id"], decision="approve")
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    answered = first if first.status_code == 200 else second
    assert answered.json()["status"] == "approved"
    [execute] = await d.commands(ToolExecute)
    assert verify_approval(d.gateway.settings.seal_key(), d.task_id, execute.call, execute.approval)
    assert [e["action"] for e in await audit(d)] == ["approved"]
    again = await answer(d, approval["id"], decision="deny")
    assert_problem(again, 409, "answered already")


async def test_an_edited_call_runs_with_the_edited_arguments_only(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    response = await answer(d, approval["id"], decision="approve", arguments={"path": "g.md"})
    assert response.status_code == 200, response.text
    [execute] = await d.commands(ToolExecute)
    assert execute.call.arguments == {"path": "g.md"}
    assert execute.call.key != call(1).key  # an edited call is a new action with its own key
    assert verify_approval(d.gateway.settings.seal_key(), d.task_id, execute.call, execute.approval)
    assert [(e["action"], e["arguments"]) for e in await audit(d)] == [
        ("edited", {"path": "f1.md"}),
        ("approved", {"path": "g.md"}),
    ]
    await d.run_tools()
    step = await d.last_step()
    assert [entry.call.arguments for entry in step.transcript] == [{"path": "g.md"}]


async def test_edited_arguments_the_tool_refuses_change_nothing(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    for bad in ({"path": ""}, {"path": "a.md", "rm": "-rf"}, {"max_chars": "lots"}):
        response = await answer(d, approval["id"], decision="approve", arguments=bad)
        assert_problem(response, 422)
    assert await d.commands(ToolExecute) == []
    assert [a["id"] for a in await pending(d)] == [approval["id"]]
    assert await audit(d) == []


async def test_a_form_takes_the_persons_details_and_refuses_unknown_fields(d, notify_tool) -> None:
    proposed = {"recipient": "ada@example.com", "message": "Draft ready", "urgent": True}
    await d.propose(ToolCall(key="k-notify", tool="notify", arguments=proposed))
    [form] = await pending(d)
    assert form["kind"] == "input"
    assert (await d.task())["status"] == "awaiting_input"
    schema = form["prompt"]["form"]
    assert set(schema["properties"]) == {"recipient", "message"}
    assert schema["properties"]["recipient"]["default"] == "ada@example.com"
    assert schema["additionalProperties"] is False
    assert form["prompt"]["arguments"] == proposed  # the whole call is shown, not only the form

    missing = await answer(d, form["id"], decision="approve")
    assert_problem(missing, 422, "needs your details")
    unknown = await answer(
        d, form["id"], decision="approve", values={"recipient": "bob@example.com", "urgent": False}
    )
    body = assert_problem(unknown, 422, "unknown form fields: urgent")
    assert body["errors"] == [{"field": "values.urgent", "message": "not a field of this form"}]
    invalid = await answer(d, form["id"], decision="approve", values={"recipient": "b"})
    assert_problem(invalid, 422)
    assert await d.commands(ToolExecute) == []

    done = await answer(
        d,
        form["id"],
        decision="approve",
        values={"recipient": "bob@example.com", "message": "Report attached"},
    )
    assert done.status_code == 200, done.text
    [execute] = await d.commands(ToolExecute)
    assert execute.call.arguments == {
        "recipient": "bob@example.com",
        "message": "Report attached",
        "urgent": True,
    }
    assert (await d.task())["status"] == "executing"


async def test_what_a_browser_types_is_the_persons_form(d) -> None:
    proposed = {"values": {"Username": "ada", "Password": ""}}
    await d.propose(ToolCall(key="k-fill", tool="browser_fill", arguments=proposed))
    [form] = await pending(d)
    assert (form["kind"], form["prompt"]["risk"]) == ("input", "external")
    schema = form["prompt"]["form"]
    assert set(schema["properties"]) == {"Username", "Password"}  # JSONB keeps no order
    assert schema["properties"]["Password"]["format"] == "password"  # shown masked

    unknown = await answer(d, form["id"], decision="approve", values={"E-mail": "a@b.c"})
    assert_problem(unknown, 422, "unknown form fields: E-mail")
    not_text = await answer(d, form["id"], decision="approve", values={"Password": 1234})
    assert_problem(not_text, 422, "must be text")
    assert await d.commands(ToolExecute) == []

    done = await answer(d, form["id"], decision="approve", values={"Password": "s3cret"})
    assert done.status_code == 200, done.text
    [execute] = await d.commands(ToolExecute)
    typed = execute.call.arguments["values"]
    assert typed["Username"] == "ada"
    assert typed["Password"].startswith(SEALED)  # the password travels and stays sealed
    key = d.gateway.settings.call_secrets_key()
    assert open_typed(key, d.task_id, typed["Password"]) == ("s3cret", True)
    async with d.gateway.app.state.sessionmaker() as db:
        stored = [json.dumps(a) for a in await db.scalars(select(ToolCallRow.arguments))]
    assert stored
    assert not any("s3cret" in row for row in stored)


async def test_an_unanswered_approval_expires_as_denied(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    assert approval["expires_at"] is not None
    async with d.gateway.app.state.sessionmaker() as db:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await db.execute(update(Interaction).values(expires_at=past))
        await db.commit()
    late = await answer(d, approval["id"], decision="approve")
    assert_problem(late, 409, "expired")
    expirer = Expirer(
        d.gateway.app.state.sessionmaker, d.gateway.settings, d.gateway.app.state.store
    )
    assert await expirer.sweep() == 1
    assert await expirer.sweep() == 0
    assert await d.commands(ToolExecute) == []
    step = await d.last_step()
    assert "nobody answered the approval request within 24 h" in step.transcript[-1].outcome.error
    [entry] = await audit(d)
    assert (entry["action"], entry["actor"]) == ("expired", "system: approval timeout")
    log = (await d.client.get(f"/tasks/{d.task_id}/events", headers=d.account.headers)).json()
    assert "approval.expired" in [e["kind"] for e in log["events"]]


async def test_three_expired_approvals_pause_the_task(d) -> None:
    expirer = Expirer(
        d.gateway.app.state.sessionmaker, d.gateway.settings, d.gateway.app.state.store
    )
    for n in range(1, 4):
        await d.propose(call(n))
        async with d.gateway.app.state.sessionmaker() as db:
            await db.execute(update(Interaction).values(expires_at=datetime.now(UTC)))
            await db.commit()
        await expirer.sweep()
    task = await d.task()
    assert (task["status"], task["status_reason"]) == (
        "needs_guidance",
        "3 tool calls were denied in this task",
    )


async def test_an_allowed_tool_runs_without_asking_and_the_rule_is_on_record(d) -> None:
    put = await d.client.put(
        "/policies/read_file", headers=d.account.headers, json={"mode": "allow"}
    )
    assert put.status_code == 200, put.text
    await d.propose(call(1))
    assert await pending(d) == []
    [execute] = await d.commands(ToolExecute)
    assert execute.call.arguments == {"path": "f1.md"}
    assert (await d.task())["status"] == "executing"
    [entry] = await audit(d)
    assert (entry["action"], entry["actor"]) == ("approved", "policy: allow for all tasks")


async def test_a_deny_rule_wins_over_an_allow(d) -> None:
    headers = d.account.headers
    await d.client.put("/policies/read_file", headers=headers, json={"mode": "allow"})
    denied = await d.client.put(
        f"/tasks/{d.task_id}/policies/read_file", headers=headers, json={"mode": "deny"}
    )
    assert denied.json()["task_mode"] == "deny"
    listed = (await d.client.get(f"/tasks/{d.task_id}/policies", headers=headers)).json()
    by_tool = {p["tool"]: (p["mode"], p["task_mode"]) for p in listed}
    assert by_tool["read_file"] == ("allow", "deny")
    assert by_tool["create_file"] == ("ask", None)
    await d.propose(call(1))
    assert await d.commands(ToolExecute) == []
    assert await pending(d) == []
    step = await d.last_step()
    assert step.transcript[-1].outcome.error == (
        "your policy denies read_file (deny for this task)"
    )


async def test_ask_once_for_this_task_approves_the_tools_later_calls(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    await answer(d, approval["id"], decision="approve", remember="task")
    await d.run_tools()
    await d.propose(call(2))
    assert await pending(d) == []
    assert len(await d.commands(ToolExecute)) == 2
    assert [e["actor"] for e in await audit(d)][-1] == "policy: ask once for this task"


async def test_side_effects_are_allowed_everywhere_only_when_confirmed(d, notify_tool) -> None:
    headers = d.account.headers
    refused = await d.client.put("/policies/notify", headers=headers, json={"mode": "allow"})
    assert_problem(refused, 422, "confirm")
    assert [
        p["mode"]
        for p in (await d.client.get("/policies", headers=headers)).json()
        if p["tool"] == "notify"
    ] == ["ask"]
    confirmed = await d.client.put(
        "/policies/notify", headers=headers, json={"mode": "allow", "confirm": True}
    )
    assert confirmed.json()["mode"] == "allow"
    per_task = await d.client.put(
        f"/tasks/{d.task_id}/policies/notify", headers=headers, json={"mode": "allow"}
    )
    assert per_task.status_code == 200  # one task needs no confirmation
    # even allowed, a tool with a form asks: the person's details are never guessed
    await d.propose(
        ToolCall(
            key="k-n", tool="notify", arguments={"recipient": "ada@example.com", "message": "hi"}
        )
    )
    assert [p["kind"] for p in await pending(d)] == ["input"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/policies/format_disk", {"mode": "allow"}, 404),
        ("/policies/read_file", {"mode": "sometimes"}, 422),
        ("/policies/read_file", {"mode": "allow", "extra": 1}, 422),
    ],
)
async def test_bad_policy_changes_are_refused(client, alice, path, body, status) -> None:
    response = await client.put(path, headers=alice.headers, json=body)
    assert_problem(response, status)
    policies = (await client.get("/policies", headers=alice.headers)).json()
    assert {p["mode"] for p in policies} == {"ask"}  # nothing changed


async def test_another_users_task_policies_and_audit_are_not_found(d, client, bob) -> None:
    for url in (f"/tasks/{d.task_id}/policies", f"/tasks/{d.task_id}/audit"):
        assert (await client.get(url, headers=bob.headers)).status_code == 404
    put = await client.put(
        f"/tasks/{d.task_id}/policies/read_file", headers=bob.headers, json={"mode": "allow"}
    )
    assert put.status_code == 404
    await d.propose(call(1))
    [approval] = await pending(d)
    answered = await client.post(
        f"/interactions/{approval['id']}/respond", headers=bob.headers, json={"decision": "approve"}
    )
    assert answered.status_code == 404
    assert await d.commands(ToolExecute) == []


async def test_the_step_request_lists_the_call_as_the_person_decided_it(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    await answer(d, approval["id"], decision="approve")
    await d.run_tools()
    step = await d.last_step()
    assert isinstance(step, StepRequested)
    assert step.transcript[-1].outcome.ok


async def test_cancelling_tells_the_executors_the_task_stopped(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    await answer(d, approval["id"], decision="approve")
    assert len(await d.commands(ToolExecute)) == 1  # on its way to an executor
    cancelled = await d.client.post(f"/tasks/{d.task_id}/cancel", headers=d.account.headers)
    assert cancelled.status_code == 200
    [stopped] = await d.commands(TaskStopped)
    assert (stopped.correlation_id, stopped.status) == (d.task_id, "cancelled")


async def test_deleting_a_running_task_tells_the_executors_too(d) -> None:
    await d.propose(call(1))
    deleted = await d.client.delete(f"/tasks/{d.task_id}", headers=d.account.headers)
    assert deleted.status_code == 204
    [stopped] = await d.commands(TaskStopped)
    assert stopped.status == "deleted"


async def test_an_approval_that_expires_while_the_task_is_paused_keeps_it_paused(d) -> None:
    await d.propose(call(1))
    async with d.gateway.app.state.sessionmaker() as db:
        await db.execute(update(Task).values(status="needs_guidance", status_reason="asked"))
        await db.execute(update(Interaction).values(expires_at=datetime.now(UTC)))
        await db.commit()
    expirer = Expirer(
        d.gateway.app.state.sessionmaker, d.gateway.settings, d.gateway.app.state.store
    )
    assert await expirer.sweep() == 1
    task = await d.task()
    assert (task["status"], task["status_reason"]) == ("needs_guidance", "asked")


def keyed(d: Driver, path: str) -> ToolCall:
    """A call as the executor proposes it: its key from the task, subtask, tool and arguments."""
    arguments = {"path": path}
    return ToolCall(
        key=call_key(d.task_id, "write", "read_file", arguments),
        tool="read_file",
        arguments=arguments,
    )


async def test_an_edit_into_a_call_the_task_already_has_is_refused(d) -> None:
    await d.propose(keyed(d, "a.md"), keyed(d, "b.md"))
    first, second = await pending(d)
    await answer(d, first["id"], decision="approve")
    same = await answer(d, second["id"], decision="approve", arguments=first["prompt"]["arguments"])
    assert_problem(same, 409, "exactly these arguments already")
    assert [a["id"] for a in await pending(d)] == [second["id"]]
    assert len(await d.commands(ToolExecute)) == 1


async def test_replanning_withdraws_the_calls_still_waiting(d) -> None:
    await d.propose(call(1))
    [approval] = await pending(d)
    async with d.gateway.app.state.sessionmaker() as db:
        await db.execute(update(Task).values(status="needs_guidance", status_reason="asked"))
        await db.commit()
    replanned = await d.client.post(
        f"/tasks/{d.task_id}/guidance",
        headers=d.account.headers,
        json={"action": "replan", "text": "Use the other file"},
    )
    assert replanned.status_code == 200, replanned.text
    assert await pending(d) == []
    late = await answer(d, approval["id"], decision="approve")
    assert late.status_code == 404
    assert (await d.task())["status"] == "planning"
