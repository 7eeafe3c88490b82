"""Commands an agent gave up on come back into their tasks instead of leaving them waiting."""

from __future__ import annotations

from troika_shared.messages import DeadLettered, StepRequested, ToolExecute, encode

from .test_approvals import pending
from .test_pipeline_rules import Driver, call
from .test_tasks import create


def letter(command, service: str, reason: str) -> DeadLettered:
    return DeadLettered(
        correlation_id=command.correlation_id,
        subject=f"troika.{command.type}",
        stream="T_EXECUTOR",
        stream_seq=7,
        deliveries=5,
        service=service,
        reason=reason,
        payload=encode(command),
    )


async def test_a_tool_call_the_executor_gave_up_on_fails_and_the_agent_hears_why(
    gateway, client, alice
) -> None:
    task = await create(client, alice, "Write a report")
    d = Driver(gateway, client, alice, task["id"])
    await d.plan()
    await d.propose(call(1))
    [approval] = await pending(d)
    await client.post(
        f"/interactions/{approval['id']}/respond", headers=alice.headers,
        json={"decision": "approve"},
    )  # fmt: skip
    [execute] = await d.commands(ToolExecute)
    router = d.orchestrator.dead_letter_router()
    dead = letter(execute, "executor", "it failed 5 times: disk full")
    await router.dispatch(dead)
    await router.dispatch(dead)  # delivered twice: applied once
    step = (await d.commands(StepRequested))[-1]
    [entry] = step.transcript
    assert entry.outcome.ok is False
    assert entry.outcome.error == "the executor gave up on this call: it failed 5 times: disk full"
    assert (await d.task())["status"] == "executing"


async def test_a_request_no_agent_could_answer_pauses_the_task_for_guidance(
    gateway, client, alice
) -> None:
    task = await create(client, alice, "Write a report")
    d = Driver(gateway, client, alice, task["id"])
    await d.plan()
    step = await d.last_step()
    await d.orchestrator.dead_letter_router().dispatch(
        letter(step, "executor", "the message could not be decoded")
    )
    detail = await d.task()
    assert detail["status"] == "needs_guidance"
    assert detail["status_reason"] == (
        "the executor could not handle a request: the message could not be decoded"
    )
