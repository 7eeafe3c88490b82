"""Schedules across a restart of every process: a time that passed while nothing ran follows
its misfire policy exactly once, and schedules in the future keep their times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from troika_testkit import scaled, wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.processes import gateway_ready

from .test_pipeline import sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {
        "TROIKA_SCHEDULE_MISFIRE_GRACE_S": "1",
        "TROIKA_SCHEDULE_SWEEP_S": "0.5",
        "TROIKA_SCHEDULE_POLL_S": "0.1",
    }


async def test_missed_runs_follow_their_misfire_policy_once_after_a_restart(
    stack, scripted_llm
) -> None:
    scripted_llm.always("PlanDraft", plan_answer(("only", [], [])))
    scripted_llm.always("StepDecision", {"action": "finish", "result": "done", "result_files": []})
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    # time enough to sign in, schedule four tasks and stop everything before the time comes
    due = datetime.now(UTC) + timedelta(seconds=scaled(3))
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)

        async def schedule(objective: str, **when) -> str:
            response = await http.post(
                "/tasks", headers=headers, json={"objective": objective, **when}
            )
            assert response.status_code == 201, response.text
            return response.json()["id"]

        run_once = await schedule("Run me late", run_at=due.isoformat())
        skipped = await schedule("Skip me", run_at=due.isoformat(), misfire="skip")
        later = await schedule("Later", run_at=(due + timedelta(hours=1)).isoformat())
        yearly = await schedule("New year", cron="0 0 1 1 *", timezone="Pacific/Auckland")
        before = {
            s["next_task_id"]: s for s in (await http.get("/schedules", headers=headers)).json()
        }

        stack.stop_all()  # everything down before the time comes
        await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + 2.5)
        stack.start_all()
        await gateway_ready(stack.url)

        async def status(task_id: str) -> str:
            return (await http.get(f"/tasks/{task_id}", headers=headers)).json()["status"]

        async def settled() -> bool:
            return await status(run_once) != "scheduled" and await status(skipped) == "cancelled"

        await wait_for(settled, timeout=60, what="the missed runs to be handled")
        await asyncio.sleep(scaled(1.5))  # more sweeps and polls: nothing may happen twice

        shown = {s["title"]: s for s in (await http.get("/schedules", headers=headers)).json()}
        late = shown["Run me late"]
        assert (late["runs"], late["last_run"]["outcome"], late["status"]) == (
            1, "ran_late", "finished"
        )  # fmt: skip
        assert late["last_run"]["task_id"] == run_once
        events = (await http.get(f"/tasks/{run_once}/events", headers=headers)).json()["events"]
        fired = [e for e in events if e["kind"] == "schedule.fired"]
        assert len(fired) == 1
        assert fired[0]["data"]["late"] is True
        assert "was not running" in fired[0]["data"]["reason"]

        skip = shown["Skip me"]
        assert (skip["runs"], skip["last_run"]["outcome"], skip["status"]) == (
            0, "skipped", "finished"
        )  # fmt: skip
        task = (await http.get(f"/tasks/{skipped}", headers=headers)).json()
        assert "misfire policy: skip" in task["status_reason"]
        assert (await http.get(f"/tasks/{skipped}/events", headers=headers)).json()["events"][-2][
            "kind"
        ] == "schedule.skipped"

        for task_id in (later, yearly):  # the future keeps its times
            now = next(s for s in shown.values() if s["next_task_id"] == task_id)
            assert now["next_run_at"] == before[task_id]["next_run_at"]
            assert now["runs"] == 0
            assert await status(task_id) == "scheduled"
