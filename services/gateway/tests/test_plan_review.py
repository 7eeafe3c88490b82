"""Reviewing the plan before it runs: the task waits with its plan, the person edits it (the
API refuses a plan that cannot be worked and changes nothing), and the executor is asked to do
the edited subtasks."""

from __future__ import annotations

from troika_shared.messages import Plan, StepRequested, Subtask

from .test_pipeline_rules import Driver
from .test_tasks import create, events

PLAN = Plan(
    subtasks=(
        Subtask(id="gather", title="Gather the figures", tool_hints=("web_search",)),
        Subtask(id="write", title="Write the report", depends_on=("gather",)),
    ),
    summary="Two steps",
)

EDITED = {
    "subtasks": [
        {"id": "gather", "title": "Gather the figures",
         "description": "Use the 2025 census only", "tool_hints": ["web_search"]},
        {"id": "check", "title": "Check the figures add up", "depends_on": ["gather"]},
        {"id": "write", "title": "Write a one-page report", "depends_on": ["check"]},
    ],
    "summary": "Three steps",
}  # fmt: skip


async def _plan_waiting(gateway, client, account, **fields) -> Driver:
    task = await create(client, account, "Report the population of three cities", **fields)
    driver = Driver(gateway, client, account, task["id"])
    await driver.plan(PLAN)
    return driver


async def test_the_plan_waits_for_review_and_the_edited_plan_is_worked(
    gateway, client, alice
) -> None:
    d = await _plan_waiting(gateway, client, alice, review_plan=True)
    task = await d.task()
    assert (task["status"], task["review_plan"]) == ("awaiting_plan_review", True)
    assert [s["key"] for s in task["subtasks"]] == ["gather", "write"]
    assert await d.commands(StepRequested) == [], "nothing runs before the person accepts"

    url = f"/tasks/{d.task_id}/plan"
    saved = await client.put(url, headers=alice.headers, json=EDITED)
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "awaiting_plan_review"
    assert [s["title"] for s in saved.json()["subtasks"]] == [
        "Gather the figures",
        "Check the figures add up",
        "Write a one-page report",
    ]
    assert await d.commands(StepRequested) == []

    started = await client.put(url, headers=alice.headers, json={**EDITED, "start": True})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "executing"
    [step] = await d.commands(StepRequested)
    assert step.subtask_id == "gather"
    assert step.plan.subtasks[0].description == "Use the 2025 census only"
    assert [s.id for s in step.plan.subtasks] == ["gather", "check", "write"]
    kinds = [e["kind"] for e in (await events(client, alice, d.task_id))["events"]]
    assert kinds.count("plan.edited") == 1  # the second save changed nothing but the start
    assert "plan.accepted" in kinds

    again = await client.put(url, headers=alice.headers, json={**EDITED, "start": True})
    assert again.status_code == 409
    assert "not waiting for your review" in again.json()["detail"]


async def test_a_plan_that_cannot_be_worked_is_refused_with_the_field_and_changes_nothing(
    gateway, client, alice
) -> None:
    d = await _plan_waiting(gateway, client, alice, review_plan=True)
    url = f"/tasks/{d.task_id}/plan"
    step = {"id": "a", "title": "A"}
    cases = [
        ({"subtasks": []}, None),
        ({"subtasks": [step, step]}, "subtasks[1].id"),
        ({"subtasks": [{**step, "depends_on": ["ghost"]}]}, "subtasks[0].depends_on"),
        ({"subtasks": [{**step, "depends_on": ["a"]}]}, "subtasks[0].depends_on"),
        ({"subtasks": [{**step, "tool_hints": ["rm_rf"]}]}, "subtasks[0].tool_hints"),
        ({"subtasks": [{**step, "depends_on": ["b"]}, {"id": "b", "title": "B",
                                                     "depends_on": ["a"]}]}, "subtasks"),
        ({"subtasks": [{"id": "a b", "title": "A"}]}, None),
        ({"subtasks": [{"id": "a", "title": ""}]}, None),
        ({"subtasks": [step], "extra": 1}, None),
    ]  # fmt: skip
    for body, field in cases:
        refused = await client.put(url, headers=alice.headers, json={**body, "start": True})
        assert refused.status_code in (400, 422), (body, refused.text)
        if field is not None:
            assert field in [e["field"] for e in refused.json()["errors"]], refused.text
    task = await d.task()
    assert task["status"] == "awaiting_plan_review"
    assert [s["key"] for s in task["subtasks"]] == ["gather", "write"]
    assert await d.commands(StepRequested) == []


async def test_the_profile_decides_when_the_composer_does_not(gateway, client, alice) -> None:
    changed = await client.put("/auth/profile", headers=alice.headers,
                               json={"review_plans": True})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["review_plans"] is True
    d = await _plan_waiting(gateway, client, alice)
    assert (await d.task())["status"] == "awaiting_plan_review"
    straight = await _plan_waiting(gateway, client, alice, review_plan=False)
    assert (await straight.task())["status"] == "executing"


async def test_the_plan_can_be_accepted_as_it_is(gateway, client, alice) -> None:
    d = await _plan_waiting(gateway, client, alice, review_plan=True)
    started = await client.put(f"/tasks/{d.task_id}/plan", headers=alice.headers,
                               json={"start": True})  # fmt: skip
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "executing"
    [step] = await d.commands(StepRequested)
    assert step.plan == PLAN


async def test_cancelling_a_plan_under_review_ends_the_task(gateway, client, alice) -> None:
    d = await _plan_waiting(gateway, client, alice, review_plan=True)
    cancelled = await client.post(f"/tasks/{d.task_id}/cancel", headers=alice.headers)
    assert cancelled.json()["status"] == "cancelled"
    late = await client.put(f"/tasks/{d.task_id}/plan", headers=alice.headers,
                            json={**EDITED, "start": True})  # fmt: skip
    assert late.status_code == 409
