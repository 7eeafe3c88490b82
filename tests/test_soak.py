"""A hundred tasks against a hostile model: each ends plainly, no call runs unapproved, no
service fails, and the API answers throughout."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from troika_testkit.hostile import INJECTION, HostileModel
from troika_testkit.pace import scaled
from troika_testkit.workload import Person

pytestmark = pytest.mark.timeout(900)

TASKS = 100
BUDGET = {"max_steps": 12, "max_tokens": 60_000}
# What a person must never be shown as a reason: a program's insides.
RAW = ("Traceback", "pydantic", "validation error for", "input_type=", "<failed_attempts>",
       "{'type':")  # fmt: skip


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {
        # a hang is longer than a request may take; failures come back quickly
        "TROIKA_LLM_TIMEOUT_S": str(scaled(1.5)),
        "TROIKA_LLM_MAX_RETRIES": "1",
        "TROIKA_RETRY_BACKOFF_S": "0.2",
        "TROIKA_RETRY_BACKOFF_MAX_S": "1",
    }


class HealthWatch:
    """Asks the gateway whether it is up, four times a second, for the whole run."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.asked = 0
        self.failures: list[str] = []
        self.slowest = 0.0

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=scaled(5)) as http:
            while True:
                started = time.perf_counter()
                try:
                    answer = await http.get("/health")
                    if answer.status_code != 200:
                        self.failures.append(f"{answer.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.asked += 1
                self.slowest = max(self.slowest, time.perf_counter() - started)
                await asyncio.sleep(0.25)


async def test_a_hundred_tasks_against_a_hostile_model_each_end_plainly(
    stack, scripted_llm
) -> None:
    hostile = HostileModel(seed=20261204, hang_s=scaled(3)).install(scripted_llm)
    watch = HealthWatch(stack.url)
    watching = asyncio.create_task(watch.run())
    try:
        async with Person(stack.url, timeout=scaled(600), task={"budget": BUDGET}) as person:
            phase = await person.stream(TASKS, concurrency=20)
            ended = {task_id: await settled(person, task_id) for task_id in phase.ids}
            logs = {
                task_id: (await person.session.get(f"/tasks/{task_id}/events"))["events"]
                for task_id in phase.ids
            }
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching

    # Every behaviour of the mix was met, by every agent where it applies.
    drawn = {name.split(".", 1)[1] for name in hostile.drawn}
    assert drawn >= {"good", "injection", "malformed_json", "truncated_json", "wrong_types",
                     "missing_fields", "invented_tool", "invented_enum", "same_call", "empty",
                     "prose", "rate_limited", "server_error", "hang"}, hostile.drawn  # fmt: skip

    # Each task ended: completed, or stopped with a plain reason.
    assert len(ended) == TASKS
    statuses = {status for status, _ in ended.values()}
    assert statuses <= {"completed", "needs_guidance", "failed"}, ended
    assert sum(status == "completed" for status, _ in ended.values()) >= TASKS // 4, ended
    for status, reason in ended.values():
        if status != "completed":
            assert reason.strip(), ended
            assert not any(raw in reason for raw in RAW), reason
            assert INJECTION not in reason

    for task_id, events in logs.items():
        kinds = [event["kind"] for event in events]
        # Within its budget: no more steps than it allows.
        assert kinds.count("step.requested") <= BUDGET["max_steps"], task_id
        # No call ran without an approval before it.
        approved: set[str] = set()
        for event in events:
            if event["kind"] == "tool.approved":
                approved.add(event["data"]["key"])
            elif event["kind"] == "tool.finished":
                assert event["data"]["key"] in approved, (task_id, event)
        # A pause is announced once, and nothing more is asked of the agents after it.
        if ended[task_id][0] == "needs_guidance":
            assert kinds.count("task.needs_guidance") == 1, kinds
            after = kinds[kinds.index("task.needs_guidance") :]
            assert not {"plan.requested", "step.requested", "review.requested"} & set(after)

    # No service failed on anything it was given, and the API answered throughout.
    for name, process in stack.processes.items():
        output = process.output()
        assert "Traceback" not in output, f"{name}:\n{output[-4000:]}"
        assert "message.failed" not in output, name
    assert watch.asked > 10
    assert not watch.failures


async def settled(person: Person, task_id: str) -> tuple[str, str]:
    """The task's status once it no longer runs, and why it stopped."""
    deadline = time.monotonic() + scaled(60)
    while True:
        task = await person.session.get(f"/tasks/{task_id}")
        if task["status"] in ("completed", "needs_guidance", "failed", "cancelled"):
            return task["status"], task["status_reason"]
        if time.monotonic() > deadline:
            return task["status"], "still running"
        await asyncio.sleep(0.2)
