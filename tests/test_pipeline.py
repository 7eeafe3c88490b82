"""The whole pipeline as processes: gateway, worker, planner, executor, reviewer, real NATS and
database, and the scripted LLM. A person signs up, states an objective, approves each action,
and the task completes with its files."""

from __future__ import annotations

import asyncio
import random
import re

import httpx
import pytest

from troika_testkit import scaled, wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.processes import gateway_ready

from .conftest import SERVICES

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def step_script(request: dict) -> dict:
    """The executor: each subtask writes its file, then finishes naming it."""
    prompt = request["messages"][1]["content"]
    subtask = re.search(r"Your subtask: (\S+) —", prompt).group(1)
    if "Tool calls so far in this subtask" not in prompt:
        return {
            "action": "use_tools",
            "tool_calls": [
                {
                    "tool": "create_file",
                    "arguments": {"path": f"{subtask}.md", "content": f"# {subtask}\n"},
                }
            ],
        }
    # as a model reading its transcript would: the files its calls wrote (a person may have
    # approved a call with another path), not the ones it first meant to write
    written = re.findall(r"wrote (\S+) \(\d+ bytes\)", prompt) or [f"{subtask}.md"]
    return {"action": "finish", "result": f"wrote {', '.join(written)}", "result_files": written}


async def sign_in(http: httpx.AsyncClient) -> dict[str, str]:
    await http.post(
        "/auth/register", json={"email": "ada@example.com", "username": "ada", "password": PASSWORD}
    )
    tokens = (await http.post("/auth/login", json={"login": "ada", "password": PASSWORD})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def one_approval_waiting(http: httpx.AsyncClient, headers) -> list[dict]:
    """Waits until exactly one action waits for approval; returns the pending list."""

    async def pending() -> list[dict]:
        return (await http.get("/interactions/pending", headers=headers)).json()

    async def one() -> bool:
        return len(await pending()) == 1

    await wait_for(one, timeout=60, what="an approval request")
    return await pending()


async def approve_until_final(
    http: httpx.AsyncClient, headers, task_id: str, timeout: float = 60
) -> dict:
    """Approves every pending action of the task until it stops running; returns the task."""
    approved = 0
    final = {"completed", "failed", "cancelled", "needs_guidance"}

    async def settled() -> bool:
        nonlocal approved
        for interaction in (
            await http.get("/interactions/pending", headers=headers, params={"task_id": task_id})
        ).json():
            response = await http.post(
                f"/interactions/{interaction['id']}/respond",
                headers=headers,
                json={"decision": "approve"},
            )
            assert response.status_code == 200, response.text
            approved += 1
        task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
        return task["status"] in final

    await wait_for(settled, timeout=timeout, what="the task to finish")
    task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
    task["approved"] = approved
    return task


async def test_a_three_subtask_objective_with_a_dependency_completes(stack, scripted_llm) -> None:
    scripted_llm.reply(
        "PlanDraft",
        plan_answer(
            ("intro", [], ["create_file"]),
            ("facts", [], ["create_file"]),
            ("summary", ["intro"], ["create_file"]),
        ),
    )
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always(
        "ReviewDecision", {"verdict": "approve", "summary": "All three files are there."}
    )
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        task = (
            await http.post(
                "/tasks", headers=headers, json={"objective": "Write intro, facts and a summary"}
            )
        ).json()
        done = await approve_until_final(http, headers, task["id"])

        assert done["status"] == "completed", done
        assert done["result"] == "All three files are there."
        assert done["approved"] == 3
        assert [s["key"] for s in done["subtasks"]] in (
            ["intro", "facts", "summary"],
            ["facts", "intro", "summary"],
        )
        assert all(s["status"] == "done" for s in done["subtasks"])
        assert {f["name"] for f in done["files"]} == {"intro.md", "facts.md", "summary.md"}
        assert done["cost"]["calls"] == 1 + 3 * 2 + 1  # plan, two steps per subtask, review
        download = await http.get(f"/tasks/{task['id']}/files/summary.md", headers=headers)
        assert download.text == "# summary\n"
        log = (await http.get(f"/tasks/{task['id']}/events", headers=headers)).json()["events"]
        kinds = [e["kind"] for e in log]
        assert kinds[0] == "task.created"
        assert kinds[-1] == "task.completed"
        assert kinds.count("subtask.done") == 3
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))

    summary_step = next(
        r
        for r in scripted_llm.asked_for("StepDecision")
        if "Your subtask: summary —" in r["messages"][1]["content"]
    )
    assert (
        "Result of subtask intro" in summary_step["messages"][1]["content"]
    )  # dependency results flow


async def test_a_revision_sends_one_subtask_back_and_the_task_then_completes(
    stack, scripted_llm
) -> None:
    scripted_llm.reply("PlanDraft", plan_answer(("draft", [], ["create_file"]), ("check", [], [])))
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.reply(
        "ReviewDecision",
        {
            "verdict": "revise",
            "summary": "draft is thin",
            "revisions": [{"subtask_id": "draft", "problem": "add a title"}],
        },
        {"verdict": "approve", "summary": "Good now."},
    )
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        task = (
            await http.post("/tasks", headers=headers, json={"objective": "Draft and check"})
        ).json()
        done = await approve_until_final(http, headers, task["id"])
    assert done["status"] == "completed", done
    assert done["review"]["round"] == 2
    revised = [
        r
        for r in scripted_llm.asked_for("StepDecision")
        if "sent this subtask back" in r["messages"][1]["content"]
    ]
    assert revised
    assert all("Your subtask: draft —" in r["messages"][1]["content"] for r in revised)
    assert "add a title" in revised[0]["messages"][1]["content"]


async def test_a_denied_call_never_runs_and_three_denials_ask_for_guidance(
    stack, scripted_llm
) -> None:
    scripted_llm.reply("PlanDraft", plan_answer(("write", [], ["create_file"])))
    counter = {"n": 0}

    def propose(request: dict) -> dict:
        counter["n"] += 1
        return {
            "action": "use_tools",
            "tool_calls": [
                {
                    "tool": "create_file",
                    "arguments": {"path": f"try{counter['n']}.md", "content": "x"},
                }
            ],
        }

    scripted_llm.always("StepDecision", propose)
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        task = (
            await http.post("/tasks", headers=headers, json={"objective": "Write a file"})
        ).json()
        for _ in range(3):
            [interaction] = await one_approval_waiting(http, headers)
            denied = await http.post(
                f"/interactions/{interaction['id']}/respond",
                headers=headers,
                json={"decision": "deny", "reason": "not now"},
            )
            assert denied.status_code == 200
            again = await http.post(
                f"/interactions/{interaction['id']}/respond",
                headers=headers,
                json={"decision": "approve"},
            )
            assert again.status_code == 409  # answered once, and that answer stands

        async def paused() -> bool:
            return (await http.get(f"/tasks/{task['id']}", headers=headers)).json()[
                "status"
            ] == "needs_guidance"

        await wait_for(paused, timeout=60, what="the task to ask for guidance")
        detail = (await http.get(f"/tasks/{task['id']}", headers=headers)).json()
        assert detail["status_reason"] == "3 tool calls were denied in this task"
        assert detail["files"] == []
    assert not list((stack.data_dir / "workspaces" / task["id"]).glob("try*.md"))


async def test_cancel_stops_a_running_task(stack, scripted_llm) -> None:
    scripted_llm.reply("PlanDraft", plan_answer(("write", [], ["create_file"])))
    scripted_llm.always("StepDecision", step_script)
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        task = (
            await http.post("/tasks", headers=headers, json={"objective": "Write a file"})
        ).json()

        await one_approval_waiting(http, headers)
        cancelled = await http.post(f"/tasks/{task['id']}/cancel", headers=headers)
        assert cancelled.json()["status"] == "cancelled"
        assert (await http.get("/interactions/pending", headers=headers)).json() == []
        await asyncio.sleep(scaled(1))  # time enough for the file, were the call to run
        detail = (await http.get(f"/tasks/{task['id']}", headers=headers)).json()
    assert detail["status"] == "cancelled"
    assert not (stack.data_dir / "workspaces" / task["id"] / "write.md").exists()


async def test_restarting_everything_while_20_approvals_wait_loses_nothing(
    stack, scripted_llm
) -> None:
    scripted_llm.always("PlanDraft", plan_answer(("write", [], ["create_file"])))
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        headers = await sign_in(http)
        created = await asyncio.gather(*(
            http.post("/tasks", headers=headers, json={"objective": f"Write file {n}"})
            for n in range(20)
        ))  # fmt: skip
        ids = [response.json()["id"] for response in created]

        async def all_waiting() -> bool:
            return len((await http.get("/interactions/pending", headers=headers)).json()) == 20

        await wait_for(all_waiting, timeout=90, what="20 approval requests")
    stack.stop_all()  # every service: gateway, worker and the agents
    stack.start_all()
    await gateway_ready(stack.url)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        tokens = (
            await http.post("/auth/login", json={"login": "ada", "password": PASSWORD})
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        waiting = (await http.get("/interactions/pending", headers=headers)).json()
        assert sorted(i["task_id"] for i in waiting) == sorted(ids)
        answers = await asyncio.gather(*(
            http.post(f"/interactions/{i['id']}/respond", headers=headers,
                      json={"decision": "approve"})
            for i in waiting
        ))  # fmt: skip
        assert [a.status_code for a in answers] == [200] * 20

        async def all_done() -> bool:
            page = (await http.get("/tasks", headers=headers, params={"limit": 50})).json()
            return all(t["status"] == "completed" for t in page["items"])

        await wait_for(all_done, timeout=120, what="the 20 tasks to complete")
        for task_id in ids:
            task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
            assert [f["name"] for f in task["files"]] == ["write.md"]
            audit = (await http.get(f"/tasks/{task_id}/audit", headers=headers)).json()
            assert [e["action"] for e in audit] == ["approved"]  # each call decided once


@pytest.mark.timeout(300)
async def test_killing_services_at_random_loses_no_task_and_runs_no_call_twice(
    stack, scripted_llm
) -> None:
    scripted_llm.always(
        "PlanDraft", plan_answer(("one", [], ["create_file"]), ("two", ["one"], ["create_file"]))
    )
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    scripted_llm.delay(0.1)  # a model that takes its time: the storm has work to hit
    rng = random.Random(7)  # noqa: S311 - a fixed seed: the same storm every run
    stop = asyncio.Event()
    kills = []

    async def storm() -> None:
        victims = [name for _, name in SERVICES]
        modules = {name: module for module, name in SERVICES}
        # A bounded storm: every service is hit while the tasks run, then the system must
        # finish them all on its own (an endless storm only measures how fast a loaded
        # machine restarts Python processes).
        while not stop.is_set() and len(kills) < 12:
            await asyncio.sleep(scaled(rng.uniform(1.5, 3)))  # time enough to start up again
            victim = rng.choice(victims)
            stack.kill(victim)
            kills.append(victim)
            stack.start(victim, modules[victim])

    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        tasks = [
            (
                await http.post("/tasks", headers=headers, json={"objective": f"Objective {n}"})
            ).json()
            for n in range(10)
        ]
        chaos = asyncio.create_task(storm())
        try:
            results = await asyncio.gather(
                *(approve_until_final(http, headers, t["id"], timeout=240) for t in tasks)
            )
        finally:
            stop.set()
            await chaos
        assert len(kills) >= 5, kills  # the storm really hit the services
        for done in results:
            assert done["status"] == "completed", done
            assert sorted(f["name"] for f in done["files"]) == ["one.md", "two.md"]
            log = (await http.get(f"/tasks/{done['id']}/events", headers=headers)).json()["events"]
            finished = [e["data"]["key"] for e in log if e["kind"] == "tool.finished"]
            assert len(finished) == len(set(finished)) == 2  # each call ran and was counted once
