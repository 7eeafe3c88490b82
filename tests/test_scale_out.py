"""Two gateway API processes behind one address and two workers: a person signs in on one and
follows the live feed on the other, approvals go to either, tasks complete with every call
made once, and a repeating schedule fires each of its runs once.

No two processes share a folder: each has a data directory of its own, as on separate hosts,
and the task files live in an S3 bucket. A file uploaded through one API is the one the
executor changes, the one the reviewer is shown, and the one the other API serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
from collections import Counter

import httpx
import pytest

from troika_client import LiveFeed
from troika_shared.task_events import TaskCompleted
from troika_testkit import scaled, wait_for
from troika_testkit.agents import llm_env, plan_answer
from troika_testkit.ports import free_port
from troika_testkit.processes import gateway_ready

from .test_pipeline import sign_in
from .test_pipeline import step_script as notes_step

pytestmark = pytest.mark.slow


BRIEF = "The brief, as uploaded.\n"
ADDED = "Added by the agents.\n"


def start(spawn, common: dict[str, str], root) -> list[str]:
    """Two gateway APIs, two workers and one of each agent, each with a data directory of its
    own; returns the APIs' addresses."""

    def run(module: str, name: str, **env: str) -> None:
        spawn(module, name=name, TROIKA_DATA_DIR=str(root / name), **common, **env)

    ports = (free_port(), free_port())
    for n, port in enumerate(ports, 1):
        run("troika_gateway", f"api-{n}", TROIKA_GATEWAY_PORT=str(port))
    for n in (1, 2):
        run("troika_gateway.worker", f"worker-{n}")
    for agent in ("planner", "executor", "reviewer"):
        run(f"troika_{agent}", agent)
    return [f"http://127.0.0.1:{port}" for port in ports]


def plan_script(request: dict) -> dict:
    """The planner: the brief is added to, anything else gets notes."""
    if "brief" in json.dumps(request).lower():
        return plan_answer(("brief", [], ["append_file"]))
    return plan_answer(("notes", [], ["create_file"]))


def step_script(request: dict) -> dict:
    """The executor: adds a line to the uploaded brief, or writes its notes."""
    prompt = request["messages"][1]["content"]
    if "Your subtask: brief" not in prompt:
        return notes_step(request)
    if "Tool calls so far in this subtask" not in prompt:
        call = {"tool": "append_file", "arguments": {"path": "brief.txt", "content": ADDED}}
        return {"action": "use_tools", "tool_calls": [call]}
    return {"action": "finish", "result": "added to the brief", "result_files": ["brief.txt"]}


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
    spawn, tmp_path, postgres_url, redis_url, bus_prefix, scripted_llm, s3_server
) -> None:
    bucket = await s3_server.new_bucket()
    common = {
        **s3_server.files_env(bucket),
        "TROIKA_SECRET_KEY": secrets.token_urlsafe(48),
        "TROIKA_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "TROIKA_REDIS_URL": redis_url,
        "TROIKA_REDIS_PREFIX": f"{bus_prefix}:",
        "TROIKA_PASSWORD_TIME_COST": "1",
        "TROIKA_PASSWORD_MEMORY_KIB": "8192",
        "TROIKA_ACK_WAIT_S": "5",
        **llm_env(scripted_llm),
    }
    urls = start(spawn, common, tmp_path)
    for url in urls:
        await gateway_ready(url)
    scripted_llm.always("PlanDraft", plan_script)
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    first, second = (httpx.AsyncClient(base_url=url, timeout=15) for url in urls)
    async with first, second:
        headers = await sign_in(first)  # signed up and in on one, the session works on both
        assert (await second.get("/auth/me", headers=headers)).status_code == 200
        await a_photo_set_on_one_is_served_by_the_other(first, second, headers)
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
            brief = await first.post(
                "/tasks/with-files", headers=headers,
                data={"task": json.dumps({"objective": "Add a line to the brief"})},
                files={"files": ("brief.txt", BRIEF.encode(), "text/plain")},
            )  # fmt: skip
            assert brief.status_code == 201, brief.text
            approved = await approve_on_either(
                (first, second), headers, done, [*created, brief.json()["id"]]
            )
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
            notes = await second.get(files[0]["url"], headers=headers)
            assert notes.text == "# notes\n"  # written by the executor, served by the other API

        await the_uploaded_file_went_round(brief.json()["id"], first, second, headers)
        # the reviewer was shown the file as the executor left it, read by a worker
        reviews = [json.dumps(r) for r in scripted_llm.asked_for("ReviewDecision")]
        shown = [r for r in reviews if "brief" in r.lower()]
        assert shown
        assert all(BRIEF.strip() in r for r in shown)
        assert all(ADDED.strip() in r for r in shown)
        await a_schedule_runs_each_time_once(first, second, headers)
        await second.delete(f"/tasks/{brief.json()['id']}", headers=headers)
        assert await s3_server.names(bucket, f"tasks/{brief.json()['id']}/") == []


async def a_photo_set_on_one_is_served_by_the_other(
    first: httpx.AsyncClient, second: httpx.AsyncClient, headers
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(64)
    photo = {"photo": ("me.png", png, "image/png")}
    assert (await first.put("/auth/photo", headers=headers, files=photo)).status_code == 200
    assert (await second.get("/auth/photo", headers=headers)).content == png


async def the_uploaded_file_went_round(
    task_id: str, first: httpx.AsyncClient, second: httpx.AsyncClient, headers
) -> None:
    """The brief uploaded through one API, added to by the executor, served by the other."""
    task = (await second.get(f"/tasks/{task_id}", headers=headers)).json()
    assert task["status"] == "completed", task
    [listed] = (await second.get(f"/tasks/{task_id}/files", headers=headers)).json()
    served = await second.get(listed["url"], headers=headers)
    assert served.status_code == 200
    assert served.text == BRIEF + ADDED
    assert served.headers["content-type"].startswith("text/plain")
    assert (listed["size"], listed["sha256"]) == (
        len(served.content),
        hashlib.sha256(served.content).hexdigest(),
    )
    again = await first.get(listed["url"], headers=headers)
    assert again.content == served.content


async def a_schedule_runs_each_time_once(
    first: httpx.AsyncClient, second: httpx.AsyncClient, headers
) -> None:
    """A schedule firing every second for three runs, with two workers: three runs, no more."""
    schedule = await second.post(
        "/tasks/with-files", headers=headers,
        data={"task": json.dumps({
            "objective": "Tick", "cron": "* * * * * *", "max_runs": 3,
            "policies": {"create_file": "allow"},
        })},
        files={"files": ("tick.txt", b"every run has me", "text/plain")},
    )  # fmt: skip
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
    found = await runs()
    assert len(found) == 3
    for run in found:  # the file attached to the schedule went with each run, copied in S3
        files = (await first.get(f"/tasks/{run['id']}/files", headers=headers)).json()
        assert sorted(f["name"] for f in files) == ["notes.md", "tick.txt"]
        tick = next(f for f in files if f["name"] == "tick.txt")
        assert (await second.get(tick["url"], headers=headers)).content == b"every run has me"
