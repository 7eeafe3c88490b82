"""Tasks: create, list, filter, detail, rename, delete, control and the event log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from troika_gateway.db.models import LlmUsage, Task, TaskStatus

from .conftest import assert_problem


async def create(client, account, objective="Research the latest news about Tesla", **extra):
    response = await client.post(
        "/tasks", headers=account.headers, json={"objective": objective, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def events(client, account, task_id, after=0):
    response = await client.get(
        f"/tasks/{task_id}/events", headers=account.headers, params={"after": after}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def set_status(gateway, task_id, status: TaskStatus, result: str = "") -> None:
    async with gateway.app.state.sessionmaker() as db:
        await db.execute(
            update(Task).where(Task.id == task_id).values(status=status.value, result=result)
        )
        await db.commit()


async def test_a_new_task_goes_to_the_planners_with_a_title_and_its_first_events(
    client, alice
) -> None:
    task = await create(
        client, alice, "Search for Python tutorials and save the best 5 links\nmore"
    )
    assert task["status"] == "planning"
    assert task["title"] == "Search for Python tutorials and save the best 5 links"
    assert task["last_event_seq"] == 3
    log = await events(client, alice, task["id"])
    assert [(e["seq"], e["kind"]) for e in log["events"]] == [
        (1, "task.created"),
        (2, "plan.requested"),
        (3, "task.status"),
    ]
    assert log["events"][2]["data"] == {"status": "planning", "previous": "queued", "reason": ""}
    assert log["last_seq"] == 3


async def test_the_detail_shows_plan_subtasks_files_and_cost(client, alice) -> None:
    task = await create(
        client, alice, title="Tesla news", budget={"max_steps": 20, "max_cost_usd": 0.5}
    )
    detail = await client.get(f"/tasks/{task['id']}", headers=alice.headers)
    assert detail.status_code == 200
    body = detail.json()
    assert body["title"] == "Tesla news"
    assert body["budget"] == {"max_steps": 20, "max_tokens": None, "max_cost_usd": 0.5}
    assert body["subtasks"] == []
    assert body["files"] == []
    assert body["cost"] == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


async def test_listing_filters_searches_and_pages_newest_first(client, alice) -> None:
    made = [await create(client, alice, f"objective number {n}") for n in range(5)]
    await create(client, alice, "Send an email to john@example.com about the 100% meeting")
    await client.post(f"/tasks/{made[0]['id']}/cancel", headers=alice.headers)

    page = (await client.get("/tasks", headers=alice.headers, params={"limit": 2})).json()
    assert page["total"] == 6
    assert len(page["items"]) == 2
    assert page["items"][0]["objective"].startswith("Send an email")
    second = (
        await client.get("/tasks", headers=alice.headers, params={"limit": 2, "offset": 2})
    ).json()
    assert {t["id"] for t in page["items"]}.isdisjoint({t["id"] for t in second["items"]})

    cancelled = (
        await client.get("/tasks", headers=alice.headers, params={"status": "cancelled"})
    ).json()
    assert [t["id"] for t in cancelled["items"]] == [made[0]["id"]]
    both = await client.get(
        "/tasks", headers=alice.headers, params=[("status", "cancelled"), ("status", "planning")]
    )
    assert both.json()["total"] == 6

    found = (
        await client.get("/tasks", headers=alice.headers, params={"q": "EMAIL to John"})
    ).json()
    assert found["total"] == 1
    literal = (await client.get("/tasks", headers=alice.headers, params={"q": "100%"})).json()
    assert literal["total"] == 1  # '%' is matched literally, not as a wildcard
    none = (await client.get("/tasks", headers=alice.headers, params={"q": "_"})).json()
    assert none["total"] == 0


async def test_history_sorts_by_cost_and_duration_and_counts_every_task(
    client, gateway, alice, bob
) -> None:
    cheap, dear, unfinished = [await create(client, alice, f"task {n}") for n in range(3)]
    await client.post(f"/tasks/{unfinished['id']}/cancel", headers=alice.headers)
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with gateway.app.state.sessionmaker() as db:
        for task, cost, minutes in ((cheap, 0.01, 30), (dear, 0.25, 5)):
            db.add(LlmUsage(task_id=task["id"], agent="planner", model="m", cost_usd=cost))
            await db.execute(
                update(Task).where(Task.id == task["id"]).values(
                    status="completed", started_at=start,
                    finished_at=start + timedelta(minutes=minutes),
                )
            )  # fmt: skip
        await db.commit()

    async def order(sort: str) -> list[str]:
        page = await client.get("/tasks", headers=alice.headers, params={"sort": sort})
        assert page.status_code == 200, page.text
        return [t["id"] for t in page.json()["items"]]

    # each row says what its task cost, whatever the order
    for sort in ("newest", "cost"):
        page = await client.get("/tasks", headers=alice.headers, params={"sort": sort})
        spent = {t["id"]: t["cost_usd"] for t in page.json()["items"]}
        assert spent == {cheap["id"]: pytest.approx(0.01), dear["id"]: pytest.approx(0.25),
                         unfinished["id"]: 0.0}  # fmt: skip

    ids = {"cheap": cheap["id"], "dear": dear["id"], "unfinished": unfinished["id"]}
    named = {v: k for k, v in ids.items()}
    assert [named[i] for i in await order("cost")] == ["dear", "cheap", "unfinished"]
    assert [named[i] for i in await order("duration")] == ["cheap", "dear", "unfinished"]
    assert [named[i] for i in await order("oldest")] == ["cheap", "dear", "unfinished"]
    assert [named[i] for i in await order("newest")] == ["unfinished", "dear", "cheap"]
    refused = await client.get("/tasks", headers=alice.headers, params={"sort": "price"})
    assert assert_problem(refused, 422)["errors"][0]["field"] == "sort"

    stats = (await client.get("/tasks/stats", headers=alice.headers)).json()
    assert stats == {"total": 3, "completed": 2, "running": 0, "waiting": 0, "failed": 0,
                     "cancelled": 1, "scheduled": 0, "cost_usd": pytest.approx(0.26),
                     "spent_today_usd": pytest.approx(0.26),
                     "spent_this_month_usd": pytest.approx(0.26),
                     "daily_budget_usd": None, "monthly_budget_usd": None,
                     "tokens_today": 0, "tokens_this_month": 0,
                     "daily_budget_tokens": None, "monthly_budget_tokens": None}  # fmt: skip
    theirs = (await client.get("/tasks/stats", headers=bob.headers)).json()
    assert (theirs["total"], theirs["cost_usd"]) == (0, 0.0)


async def test_rename_appends_an_event(client, alice) -> None:
    task = await create(client, alice)
    renamed = await client.put(
        f"/tasks/{task['id']}", headers=alice.headers, json={"title": "  Tesla  "}
    )
    assert renamed.json()["title"] == "Tesla"
    log = await events(client, alice, task["id"], after=3)
    assert [(e["seq"], e["kind"], e["data"]) for e in log["events"]] == [
        (4, "task.renamed", {"title": "Tesla"})
    ]
    assert_problem(
        await client.put(f"/tasks/{task['id']}", headers=alice.headers, json={"title": "   "}), 422
    )


async def test_cancel_stops_an_unfinished_task_and_is_refused_for_a_finished_one(
    client, alice
) -> None:
    task = await create(client, alice)
    cancelled = await client.post(f"/tasks/{task['id']}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = await client.post(f"/tasks/{task['id']}/cancel", headers=alice.headers)
    assert_problem(again, 409, "already finished (cancelled)")
    kinds = [e["kind"] for e in (await events(client, alice, task["id"]))["events"]]
    assert kinds == [
        "task.created",
        "plan.requested",
        "task.status",
        "task.status",
        "task.cancelled",
    ]


async def test_rerun_makes_a_fresh_task_with_the_same_objective(client, alice) -> None:
    task = await create(client, alice, "Update cell A1 in report.xlsx to 'Q4 Revenue'")
    await client.post(
        f"/tasks/{task['id']}/files",
        headers=alice.headers,
        files={"files": ("report.xlsx", b"PK\x03\x04data")},
    )
    rerun = await client.post(f"/tasks/{task['id']}/rerun", headers=alice.headers)
    assert rerun.status_code == 201
    fresh = rerun.json()
    assert fresh["id"] != task["id"]
    assert (fresh["objective"], fresh["status"]) == (task["objective"], "planning")
    files = (await client.get(f"/tasks/{fresh['id']}/files", headers=alice.headers)).json()
    assert [f["name"] for f in files] == ["report.xlsx"]
    kinds = [e["kind"] for e in (await events(client, alice, task["id"]))["events"]]
    assert kinds[-1] == "task.rerun"


async def test_continue_carries_the_result_and_files_of_a_finished_task(
    client, gateway, alice
) -> None:
    task = await create(client, alice)
    await client.post(
        f"/tasks/{task['id']}/files",
        headers=alice.headers,
        files={"files": ("summary.md", b"# Tesla\n")},
    )
    early = await client.post(
        f"/tasks/{task['id']}/continue", headers=alice.headers, json={"objective": "more"}
    )
    assert_problem(early, 409, "once it has finished")
    await set_status(gateway, task["id"], TaskStatus.COMPLETED, result="Tesla delivered 400k cars.")
    follow = await client.post(
        f"/tasks/{task['id']}/continue",
        headers=alice.headers,
        json={"objective": "Mail me the summary"},
    )
    assert follow.status_code == 201
    new = follow.json()
    assert new["parent_id"] == task["id"]
    detail = (await client.get(f"/tasks/{new['id']}", headers=alice.headers)).json()
    assert detail["guidance"] == ["The previous task's result:\nTesla delivered 400k cars."]
    download = await client.get(f"/tasks/{new['id']}/files/summary.md", headers=alice.headers)
    assert download.content == b"# Tesla\n"


async def test_guidance_is_only_for_a_task_that_asked_for_it(client, gateway, alice) -> None:
    task = await create(client, alice)
    refused = await client.post(
        f"/tasks/{task['id']}/guidance", headers=alice.headers, json={"text": "go on"}
    )
    assert_problem(refused, 409, "not waiting for guidance")
    await set_status(gateway, task["id"], TaskStatus.NEEDS_GUIDANCE)
    empty = await client.post(
        f"/tasks/{task['id']}/guidance", headers=alice.headers, json={"text": " "}
    )
    assert_problem(empty, 422)
    answered = await client.post(
        f"/tasks/{task['id']}/guidance",
        headers=alice.headers,
        json={"action": "replan", "text": "Use only Reuters as a source"},
    )
    assert answered.json()["status"] == "planning"  # re-planning with the instructions
    detail = (await client.get(f"/tasks/{task['id']}", headers=alice.headers)).json()
    assert detail["guidance"] == ["Use only Reuters as a source"]


async def test_delete_removes_the_task_its_events_and_its_files(client, gateway, alice) -> None:
    task = await create(client, alice)
    await client.post(
        f"/tasks/{task['id']}/files", headers=alice.headers, files={"files": ("a.txt", b"a")}
    )
    workspace = gateway.settings.data_dir / "workspaces" / task["id"]
    assert (workspace / "a.txt").is_file()
    assert (await client.delete(f"/tasks/{task['id']}", headers=alice.headers)).status_code == 204
    assert_problem(await client.get(f"/tasks/{task['id']}", headers=alice.headers), 404)
    assert_problem(await client.get(f"/tasks/{task['id']}/events", headers=alice.headers), 404)
    assert not workspace.exists()
    assert (await client.get("/tasks", headers=alice.headers)).json()["total"] == 0


async def test_the_event_log_pages_from_any_sequence_number(client, alice) -> None:
    task = await create(client, alice)
    for n in range(5):
        await client.put(f"/tasks/{task['id']}", headers=alice.headers, json={"title": f"t{n}"})
    log = await events(client, alice, task["id"], after=4)
    assert [e["seq"] for e in log["events"]] == [5, 6, 7, 8]
    limited = await client.get(
        f"/tasks/{task['id']}/events", headers=alice.headers, params={"after": 0, "limit": 2}
    )
    assert [e["seq"] for e in limited.json()["events"]] == [1, 2]
    assert limited.json()["last_seq"] == 2
    assert (await events(client, alice, task["id"], after=8))["events"] == []


async def test_concurrent_renames_number_their_events_without_gaps(client, alice) -> None:
    task = await create(client, alice)
    results = await asyncio.gather(
        *(
            client.put(f"/tasks/{task['id']}", headers=alice.headers, json={"title": f"t{n}"})
            for n in range(6)
        )
    )
    assert all(r.status_code in (200, 409) for r in results)
    applied = sum(r.status_code == 200 for r in results)
    seqs = [e["seq"] for e in (await events(client, alice, task["id"]))["events"]]
    assert seqs == list(range(1, applied + 4))


@pytest.mark.parametrize("path", ["", "/events", "/files", "/files/a.txt"])
async def test_an_unknown_task_is_404(client, alice, path) -> None:
    assert_problem(
        await client.get(f"/tasks/0000{path}", headers=alice.headers), 404, "no such task"
    )
