"""The live feed (the web app's, the terminal's) across a gateway restart: every event once, in
order, none missing, each with its typed body."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from troika_client import LiveFeed
from troika_shared.task_events import TaskCompleted, TaskEventBody
from troika_testkit import scaled, wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.processes import gateway_ready

from .test_pipeline import sign_in, step_script

pytestmark = pytest.mark.slow


async def test_the_feed_resumes_after_the_gateway_restarts_without_gaps_or_repeats(
    stack, scripted_llm
) -> None:
    scripted_llm.always(
        "PlanDraft", plan_answer(("one", [], ["create_file"]), ("two", ["one"], ["create_file"]))
    )
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        token = headers["Authorization"].removeprefix("Bearer ")

        async def current_token() -> str:
            return token

        ws_url = stack.url.replace("http://", "ws://") + "/ws"
        feed = LiveFeed(ws_url, current_token, retry_s=0.2)
        seen: list[tuple[str, int]] = []
        bodies: list[TaskEventBody | None] = []

        async def follow() -> None:
            async for event in feed.events():
                if event.task_id:
                    seen.append((event.task_id, event.seq))
                    bodies.append(event.body())

        follower = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(feed.connected.wait(), scaled(15))
            task = (
                await http.post("/tasks", headers=headers, json={"objective": "Two files"})
            ).json()

            async def approve_one() -> bool:
                pending = (await http.get("/interactions/pending", headers=headers)).json()
                for waiting in pending:
                    answer = {"decision": "approve"}
                    await http.post(
                        f"/interactions/{waiting['id']}/respond", headers=headers, json=answer
                    )
                    return True
                return False

            await wait_for(approve_one, timeout=60, what="the first approval")
            # The gateway goes away while the task goes on, and comes back.
            stack.kill("gateway")
            await asyncio.sleep(1)
            stack.start("gateway", "troika_gateway")
            await gateway_ready(stack.url)
            await wait_for(approve_one, timeout=60, what="the second approval")

            async def completed() -> bool:
                detail = (await http.get(f"/tasks/{task['id']}", headers=headers)).json()
                return detail["status"] == "completed"

            await wait_for(completed, timeout=60, what="the task to complete")
            log = (await http.get(f"/tasks/{task['id']}/events", headers=headers)).json()

            async def all_seen() -> bool:
                return len([s for t, s in seen if t == task["id"]]) >= log["last_seq"]

            await wait_for(all_seen, timeout=15, what="the feed to catch up")
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    delivered = [seq for task_id, seq in seen if task_id == task["id"]]
    assert delivered == [e["seq"] for e in log["events"]]  # each once, in order, none missing
    assert delivered == list(range(1, log["last_seq"] + 1))
    assert None not in bodies  # every kind the gateway sent is one the client can read typed
    assert any(isinstance(body, TaskCompleted) for body in bodies)
