"""The browser tools end to end: the scripted model drives the executor's Chromium through a
real site on loopback (a login whose password only the person types, a table to extract, a
report to download, a two-step form with validation errors), every action approved through
the API; and an executor killed in the middle of a page load."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest

from troika_testkit import wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.procfs import processes_with_env
from troika_testkit.site import ORDERS, PASSWORD, REPORT, USERNAME, Site

from .test_pipeline import sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no system Chromium"),
]
MARK = "TROIKA_BROWSER_OF"  # what the executor marks its Chromium with


@pytest.fixture
def site():
    with Site() as running:
        yield running


@pytest.fixture
def stack_env(site) -> dict[str, str]:
    # The site is on loopback: the operator allows exactly its port, as for an intranet host.
    return {"TROIKA_OUTBOUND_ALLOW_HOSTS": json.dumps([f"127.0.0.1:{site.port}"])}


def text_of(request: dict) -> str:
    """The step's prompt (a model that reads images gets the page's screenshot beside it)."""
    content = request["messages"][1]["content"]
    if isinstance(content, str):
        return content
    return next(part["text"] for part in content if part["type"] == "text")


def outputs(prompt: str) -> list[str]:
    return re.findall(r"<<<DATA output \d+>>>\n(.*?)\n<<<END DATA output \d+>>>", prompt, re.S)


def scripted(site: Site, steps: dict[str, list]) -> object:
    """The executor's decisions: each subtask's calls in order (a call may be a function of
    the outputs so far), then ``finish``."""

    def decide(request: dict) -> dict:
        prompt = text_of(request)
        subtask = re.search(r"Your subtask: (\S+) —", prompt).group(1)
        seen = outputs(prompt)
        plan = steps[subtask]
        if len(seen) < len(plan):
            tool, arguments = plan[len(seen)]
            if callable(arguments):
                arguments = arguments(seen)
            return {"action": "use_tools", "tool_calls": [{"tool": tool, "arguments": arguments}]}
        return {"action": "finish", "result": f"{subtask}: {seen[-1][:200]}", "result_files": []}

    return decide


def orders_csv(seen: list[str]) -> dict:
    """The table the page showed, as the model would write it."""
    rows = [line.split("\t") for line in seen[-1].splitlines() if line.startswith("A-")]
    content = "order,item,quantity,total\n" + "".join(",".join(r) + "\n" for r in rows)
    return {"path": "orders.csv", "content": content}


async def decide_all(http, headers, task_id: str, typed: dict[str, str], decided: list) -> dict:
    """Approves every action as it comes; on a form, the person types ``typed`` values into
    the fields the form has (the password the model never knew)."""

    async def settled() -> bool:
        pending = await http.get(
            "/interactions/pending", headers=headers, params={"task_id": task_id}
        )
        for interaction in pending.json():
            body: dict = {"decision": "approve"}
            prompt = interaction["prompt"]
            if interaction["kind"] == "input":
                form = prompt["form"]["properties"]
                body["values"] = {name: typed.get(name, field.get("default", ""))
                                  for name, field in form.items()}  # fmt: skip
            answered = await http.post(
                f"/interactions/{interaction['id']}/respond", headers=headers, json=body
            )
            assert answered.status_code == 200, answered.text
            decided.append((prompt["tool"], prompt["risk"]))
        task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
        return task["status"] in {"completed", "failed", "cancelled", "needs_guidance"}

    await wait_for(settled, timeout=150, what="the task to finish")
    return (await http.get(f"/tasks/{task_id}", headers=headers)).json()


def chromium_of(data_dir: Path) -> list[int]:
    """The executor's Chromium processes (each carries the data folder in its environment)."""
    return processes_with_env(MARK, str(data_dir.resolve()))


LOGIN = [  # after opening the login page: the model leaves the password to the person
    ("browser_fill", {"values": {"Username": USERNAME, "Password": ""}}),
    ("browser_click", {"role": "button", "name": "Sign in"}),
]


async def test_the_model_signs_in_extracts_a_table_downloads_and_applies(
    stack, scripted_llm, site
) -> None:
    steps = {
        "orders": [
            ("browser_open", {"url": f"{site.url}/login"}),
            *LOGIN,
            ("browser_click", {"role": "link", "name": "Your orders"}),
            ("browser_get_text", {}),
            ("create_file", orders_csv),
            ("browser_download", {"text": "Download the report"}),
        ],
        "apply": [
            ("browser_open", {"url": f"{site.url}/apply"}),
            ("browser_fill", {"values": {"Full name": "Ada Lovelace", "E-mail": "ada-at-home"}}),
            ("browser_click", {"text": "Next"}),
            ("browser_fill", {"values": {"E-mail": "ada@example.com"}}),
            ("browser_click", {"text": "Next"}),
            ("browser_select", {"field": "Plan", "options": ["Pro"]}),
            ("browser_click", {"role": "button", "name": "Send application"}),
            ("browser_close", {}),
        ],
    }
    scripted_llm.reply(
        "PlanDraft",
        plan_answer(
            (
                "orders",
                [],
                [
                    "browser_open",
                    "browser_fill",
                    "browser_click",
                    "browser_get_text",
                    "create_file",
                    "browser_download",
                ],
            ),
            (
                "apply",
                ["orders"],
                [
                    "browser_open",
                    "browser_fill",
                    "browser_click",
                    "browser_select",
                    "browser_close",
                ],
            ),
        ),
    )
    scripted_llm.always("StepDecision", scripted(site, steps))
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        objective = "Save my shop orders and the report, then apply for an account"
        task = (await http.post("/tasks", headers=headers, json={"objective": objective})).json()
        decided: list = []
        done = await decide_all(http, headers, task["id"], {"Password": PASSWORD}, decided)
        assert done["status"] == "completed", json.dumps(done)[:4000]
        events = (
            await http.get(f"/tasks/{task['id']}/events", headers=headers, params={"limit": 500})
        ).json()["events"]

    # reading and following a link were low risk; typing, submitting and downloading high
    assert decided[:7] == [
        ("browser_open", "read"), ("browser_fill", "external"), ("browser_click", "external"),
        ("browser_click", "read"), ("browser_get_text", "read"), ("create_file", "write"),
        ("browser_download", "external"),
    ]  # fmt: skip
    assert site.logins == [USERNAME]  # the password the person typed in the form worked
    workspace = stack.data_dir / "workspaces" / task["id"]
    assert (workspace / "downloads/orders-report.csv").read_bytes() == REPORT
    saved = (workspace / "orders.csv").read_text()
    assert saved.splitlines()[1:] == [",".join(order) for order in ORDERS]
    # the validation error reached the model, which corrected the address
    clicks = [e["data"]["output"] for e in events
              if e["kind"] == "tool.finished" and e["data"]["tool"] == "browser_click"]  # fmt: skip
    assert ["Please enter a valid e-mail address." in click for click in clicks[-3:-1]] == [
        True, False,
    ]  # fmt: skip
    assert site.applications[-1]["email"] == "ada@example.com"
    assert site.applications[-1]["plan"] == "pro"
    # the password went from the person's form to the page, never to the model
    # … nor to the database, the logs or any file of the stack: it travelled sealed
    leaked = [
        path for path in stack.data_dir.parent.rglob("*")
        if path.is_file() and PASSWORD.encode() in path.read_bytes()
    ]  # fmt: skip
    assert leaked == []
    asked = scripted_llm.asked_for("StepDecision")
    prompts = json.dumps(asked)
    assert PASSWORD not in prompts
    assert "(a password, 21 characters, hidden)" in prompts
    # a model that reads images is shown the page as it is after the last action
    contents = [request["messages"][1]["content"] for request in asked]
    shown = [part for content in contents if isinstance(content, list)
             for part in content if part["type"] == "image_url"]  # fmt: skip
    assert shown
    assert shown[-1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.timeout(300)  # longer than its own waits, which a busy machine may need
async def test_an_executor_killed_mid_page_retries_the_step_signed_in(
    stack, scripted_llm, site
) -> None:
    steps = {
        "orders": [
            ("browser_open", {"url": f"{site.url}/login"}),
            *LOGIN,
            ("browser_open", {"url": f"{site.url}/slow?s=4&to=/orders"}),
            ("browser_get_text", {}),
            ("browser_close", {}),
        ]
    }
    hints = ["browser_open", "browser_fill", "browser_click", "browser_get_text", "browser_close"]
    scripted_llm.reply("PlanDraft", plan_answer(("orders", [], hints)))
    scripted_llm.always("StepDecision", scripted(site, steps))
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
    slow_before = site.slow_hits
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        task = (await http.post("/tasks", headers=headers, json={"objective": "My orders"})).json()
        decided: list = []
        deciding = asyncio.create_task(
            decide_all(http, headers, task["id"], {"Password": PASSWORD}, decided)
        )

        async def loading() -> bool:
            return site.slow_hits > slow_before

        await wait_for(loading, timeout=90, what="the slow page to be asked for")
        assert chromium_of(stack.data_dir)  # the executor's browser is at work
        stack.kill("executor")
        await no_chromium_left(stack.data_dir)  # the browser went with the executor
        stack.start("executor", "troika_executor")
        done = await deciding
        assert done["status"] == "completed", json.dumps(done)[:4000]

    assert site.slow_hits == slow_before + 2  # the step ran again on the new executor
    assert site.logins == [USERNAME]  # … signed in still: the stored cookies were used
    finished = [
        e["data"]["output"]
        for e in (
            await _events(stack.url, headers, task["id"])
        )
        if e["kind"] == "tool.finished"
    ]  # fmt: skip
    assert any("A-1001\tLamp" in output for output in finished)
    stack.kill("executor")
    await no_chromium_left(stack.data_dir)


async def no_chromium_left(data_dir: Path) -> None:
    """Waits for the executor's Chromium to go (Playwright's driver closes it when it sees
    the executor gone)."""

    async def gone() -> bool:
        return chromium_of(data_dir) == []

    await wait_for(gone, timeout=20, what="no Chromium of the executor left")


async def _events(url: str, headers: dict, task_id: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        response = await http.get(f"/tasks/{task_id}/events", headers=headers,
                                  params={"limit": 500})  # fmt: skip
        return response.json()["events"]
