"""Money budgets through the API: a task paused at its limit goes on when the person raises it;
a person's own daily or monthly limit stops new tasks with a clear message and pauses running
ones before their next step."""

from __future__ import annotations

from troika_shared.messages import StepProposed, StepRequested, SubtaskResult, Usage

from .test_pipeline_rules import PLAN, Driver
from .test_tasks import create

COSTLY = (Usage(model="m", prompt_tokens=100, completion_tokens=50, cost_usd=0.75),)


async def test_a_task_paused_at_its_money_limit_goes_on_when_it_is_raised(
    gateway, client, alice
) -> None:
    task = await create(client, alice, "Write a report", budget={"max_cost_usd": 0.5})
    d = Driver(gateway, client, alice, task["id"])
    await d.plan(PLAN, usage=COSTLY)
    paused = await d.task()
    assert (paused["status"], paused["status_reason"]) == (
        "needs_guidance",
        "the cost budget of $0.50 is used up",
    )
    assert await d.commands(StepRequested) == []

    url = f"/tasks/{d.task_id}/budget"
    refused = await client.put(url, headers=alice.headers, json={"max_cost_usd": -1})
    assert refused.status_code in (400, 422)
    assert (await d.task())["budget"]["max_cost_usd"] == 0.5, "a refused budget changes nothing"

    raised = await client.put(url, headers=alice.headers, json={"max_cost_usd": 2.0})
    assert raised.status_code == 200, raised.text
    assert raised.json()["status"] == "executing"
    assert [s.subtask_id for s in await d.commands(StepRequested)] == ["write"]
    detail = await d.task()
    assert detail["budget"] == {"max_cost_usd": 2.0}
    assert detail["cost_by_agent"]["planner"]["cost_usd"] == 0.75
    assert detail["cost"]["cost_usd"] == 0.75
    assert detail["subtasks"][0]["cost"]["calls"] == 0, "the plan is no subtask's"

    # the executor's steps are counted on their subtask as well as on the agent
    step = await d.last_step()
    await d.answer(step, StepProposed, subtask_id="write", usage=COSTLY,
                   result=SubtaskResult(summary="written"))  # fmt: skip
    detail = await d.task()
    assert detail["subtasks"][0]["cost"] == {
        "calls": 1, "prompt_tokens": 100, "completion_tokens": 50, "cost_usd": 0.75
    }  # fmt: skip
    assert detail["cost_by_agent"]["executor"]["cost_usd"] == 0.75
    assert detail["cost"]["cost_usd"] == 1.5


async def test_the_persons_monthly_limit_stops_new_tasks_with_a_clear_message(
    gateway, client, alice
) -> None:
    first = await create(client, alice, "Write a report")
    await Driver(gateway, client, alice, first["id"]).plan(PLAN, usage=COSTLY)
    limit = await client.put("/auth/profile", headers=alice.headers,
                             json={"monthly_budget_usd": 0.5})  # fmt: skip
    assert limit.status_code == 200, limit.text
    assert limit.json()["monthly_budget_usd"] == 0.5

    refused = await client.post("/tasks", headers=alice.headers, json={"objective": "More"})
    assert refused.status_code == 409
    assert refused.json()["title"] == "Budget used up"
    assert refused.json()["detail"] == (
        "your monthly budget of $0.50 is used up ($0.75 spent this month); raise it in your "
        "profile to start more tasks"
    )
    rerun = await client.post(f"/tasks/{first['id']}/rerun", headers=alice.headers)
    assert rerun.status_code == 409
    listed = (await client.get("/tasks", headers=alice.headers)).json()
    assert listed["total"] == 1, "nothing was created"
    stats = (await client.get("/tasks/stats", headers=alice.headers)).json()
    assert (stats["spent_this_month_usd"], stats["monthly_budget_usd"]) == (0.75, 0.5)

    # the running task stops before its next step, saying why
    running = await Driver(gateway, client, alice, first["id"]).task()
    assert running["status"] == "executing"  # its step was asked before the limit was set

    await client.put("/auth/profile", headers=alice.headers, json={"monthly_budget_usd": None})
    assert (await client.post("/tasks", headers=alice.headers, json={"objective": "More"})
            ).status_code == 201  # fmt: skip


async def test_the_persons_daily_limit_pauses_a_running_task(gateway, client, alice) -> None:
    await client.put("/auth/profile", headers=alice.headers, json={"daily_budget_usd": 0.5})
    task = await create(client, alice, "Write a report")
    d = Driver(gateway, client, alice, task["id"])
    await d.plan(PLAN, usage=COSTLY)
    paused = await d.task()
    assert paused["status"] == "needs_guidance"
    assert paused["status_reason"].startswith("your daily budget of $0.50 is used up ($0.75 spent)")
    assert await d.commands(StepRequested) == []


async def test_a_money_limit_must_be_a_positive_amount(client, alice) -> None:
    for bad in (0, -3, "lots", 10_000_000):
        refused = await client.put("/auth/profile", headers=alice.headers,
                                   json={"monthly_budget_usd": bad})  # fmt: skip
        assert refused.status_code in (400, 422), bad
    profile = (await client.get("/auth/profile", headers=alice.headers)).json()
    assert profile["monthly_budget_usd"] is None


async def test_the_persons_token_limits_pause_running_tasks_and_stop_new_ones(
    gateway, client, alice
) -> None:
    limits = {"daily_budget_tokens": 120, "monthly_budget_tokens": 100_000}
    saved = await client.put("/auth/profile", headers=alice.headers, json=limits)
    assert saved.status_code == 200, saved.text
    assert {k: saved.json()[k] for k in limits} == limits
    task = await create(client, alice, "Write a report")
    d = Driver(gateway, client, alice, task["id"])
    await d.plan(PLAN, usage=COSTLY)  # 150 tokens
    paused = await d.task()
    assert paused["status"] == "needs_guidance"
    assert paused["status_reason"] == (
        "your daily token limit of 120 tokens is used up (150 used); raise it in your "
        "profile, then continue"
    )
    assert await d.commands(StepRequested) == []

    refused = await client.post("/tasks", headers=alice.headers, json={"objective": "More"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "your daily token limit of 120 tokens is used up (150 used today); raise it in your "
        "profile to start more tasks"
    )
    stats = (await client.get("/tasks/stats", headers=alice.headers)).json()
    assert (stats["tokens_today"], stats["tokens_this_month"]) == (150, 150)
    assert (stats["daily_budget_tokens"], stats["monthly_budget_tokens"]) == (120, 100_000)

    await client.put("/auth/profile", headers=alice.headers, json={"daily_budget_tokens": None})
    made = await client.post("/tasks", headers=alice.headers, json={"objective": "More"})
    assert made.status_code == 201, made.text


async def test_a_token_limit_must_be_a_whole_positive_number(client, alice) -> None:
    for bad in (0, -3, 1.5, "lots", 10**13):
        refused = await client.put("/auth/profile", headers=alice.headers,
                                   json={"daily_budget_tokens": bad})  # fmt: skip
        assert refused.status_code in (400, 422), bad
    profile = (await client.get("/auth/profile", headers=alice.headers)).json()
    assert profile["daily_budget_tokens"] is None
