"""Two gateway API processes behind one address and two workers: a person signs in on one and
follows the live feed on the other, approvals go to either, tasks complete with every call
made once, and a repeating schedule fires each of its runs once."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter

import httpx
import pytest

from troika_client import LiveFeed
from troika_shared.task_events import TaskCompleted
from troika_testkit import scaled, wait_for
from troika_testkit.agents import llm_env, plan_answer
from troika_testkit.ports import free_port

from .conftest import gateway_ready
from .test_pipeline import sign_in, step_script

pytestmark = pytest.mark.slow


def start(spawn, common: dict[str, str]) -> list[str]:
    """Two gateway APIs, two workers and one of each agent; returns the APIs' addresses."""
    ports = (free_port(), free_port())
    for n, port in enumerate(ports, 1):
        spawn("troika_gateway", name=f"api-{n}", TROIKA_GATEWAY_PORT=str(port), **common)
    for n in (1, 2):
        spawn("troika_gateway.worker", name=f"worker-{n}", **common)
    for agent in ("planner", "executor", "reviewer"):
        spawn(f"troika_{agent}", name=agent, **common)
    return [f"http://127.0.0.1:{port}" for port in ports]


async def follow(feed: LiveFeed, seen: list[tuple[str, int]], done: set[str]) -> None:
    """Records each task event's number, and which tasks completed."""
    async for event in feed.events():
        if event.task_id:
            seen.append((event.task_id, event.seq))
            if isinstance(event.body(), TaskCompleted):
                done.add(event.task_id)


async def approve_on_either(
    apis: tuple[httpx.AsyncClient, httpx.AsyncClient], headers, done: set[str], tasks: list[str]
) -> Counter[str]:
    """Approves what waits, on one API then the other, until every task completed; returns the
    approvals per task."""
    approvers = itertools.cycle(apis)
    approved: Counter[str] = Counter()

    async def all_done() -> bool:
        api = next(approvers)
        for waiting in (await api.get("/interactions/pending", headers=headers)).json():
            url = f"/interactions/{waiting['id']}/respond"
            answer = await api.post(url, headers=headers, json={"decision": "approve"})
            if answer.status_code == 200:
                approved[waiting["task_id"]] += 1
        return done >= set(tasks)

    await wait_for(all_done, timeout=90, what="every task to complete")
    return approved


async def test_two_apis_and_two_workers_share_the_work_and_do_each_thing_once(
    spawn, tmp_path, postgres_url, redis_url, bus_prefix, scripted_llm
) -> None:
    common = {
        "TROIKA_SECRET_KEY": secrets.token_urlsafe(48),
        "TROIKA_DATA_DIR": str(tmp_path / "data"),
        "TROIKA_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "TROIKA_REDIS_URL": redis_url,
        "TROIKA_REDIS_PREFIX": f"{bus_prefix}:",
        "TROIKA_PASSWORD_TIME_COST": "1",
        "TROIKA_PASSWORD_MEMORY_KIB": "8192",
        "TROIKA_ACK_WAIT_S": "5",
        **llm_env(scripted_llm),
    }
    urls = start(spawn, common)
    for url in urls:
        await gateway_ready(url)
    scripted_llm.always("PlanDraft", plan_answer(("notes", [], ["create_file"])))
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    first, second = (httpx.AsyncClient(base_url=url, timeout=15) for url in urls)
    async with first, second:
        headers = await sign_in(first)  # signed up and in on one, the session works on both
        assert (await second.get("/auth/me", headers=headers)).status_code == 200
        token = headers["Authorization"].removeprefix("Bearer ")

        async def current_token() -> str:
            return token

        feed = LiveFeed(urls[1].replace("http://", "ws://") + "/ws", current_token, retry_s=0.2)
        seen: list[tuple[str, int]] = []
        done: set[str] = set()
        follower = asyncio.create_task(follow(feed, seen, done))
        try:
            await asyncio.wait_for(feed.connected.wait(), scaled(15))
            created = []
            for n in range(4):
                made = await first.post("/tasks", headers=headers, json={"objective": f"Notes {n}"})
                created.append(made.json()["id"])
            approved = await approve_on_either((first, second), headers, done, created)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

        # The feed on the other API had every event of each task once, in order.
        for task_id in created:
            numbers = [seq for task, seq in seen if task == task_id]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
            task = (await second.get(f"/tasks/{task_id}", headers=headers)).json()
            assert task["status"] == "completed"
            assert approved[task_id] == 1  # one call, approved once, run once
            files = (await first.get(f"/tasks/{task_id}/files", headers=headers)).json()
            assert [f["name"] for f in files] == ["notes.md"]

        await a_schedule_runs_each_time_once(first, second, headers)


async def a_schedule_runs_each_time_once(
    first: httpx.AsyncClient, second: httpx.AsyncClient, headers
) -> None:
    """A schedule firing every second for three runs, with two workers: three runs, no more."""
    schedule = await second.post("/tasks", headers=headers, json={
        "objective": "Tick", "cron": "* * * * * *", "max_runs": 3,
        "policies": {"create_file": "allow"},
    })  # fmt: skip
    assert schedule.status_code == 201, schedule.text
    schedule_id = schedule.json()["schedule_id"]

    async def runs() -> list[dict]:
        listed = (await first.get("/tasks", headers=headers, params={"limit": 100})).json()
        items = listed["items"] if isinstance(listed, dict) else listed
        return [t for t in items if t.get("schedule_id") == schedule_id]

    async def three_finished() -> bool:
        found = await runs()
        return len(found) >= 3 and all(t["status"] == "completed" for t in found)

    await wait_for(three_finished, timeout=60, what="three scheduled runs")
    await asyncio.sleep(scaled(2))  # a fourth, or a run started twice, would show by now
    assert len(await runs()) == 3
