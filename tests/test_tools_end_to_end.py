"""A person's objective carried out with real tools, end to end: the uploaded CSV is summed per
region, the totals written to an Excel workbook, and the workbook e-mailed through the person's
own SMTP account — every action approved by them, the mail checked where it arrives."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import httpx
import openpyxl
import pytest

from troika_shared.approvals import call_key
from troika_testkit import wait_for
from troika_testkit.agents import plan_answer

from .test_pipeline import sign_in

pytestmark = pytest.mark.slow

SALES = """date,region,product,amount
2026-01-03,North,apples,120.50
2026-01-04,South,pears,80.00
2026-01-09,North,pears,99.50
2026-01-12,East,apples,300.25
2026-01-15,South,apples,20.00
2026-01-21,East,plums,49.75
"""


@pytest.fixture
def stack_env(mail_server) -> dict[str, str]:
    # The person's mail server is on loopback: the operator allows it, as for an intranet host.
    return {
        "TROIKA_OUTBOUND_ALLOW_HOSTS": json.dumps([f"127.0.0.1:{mail_server.port}"]),
        "TROIKA_SANDBOX_FILE_MB": "8",
        "TROIKA_STUCK_TOOL_FAILURES": "20",  # the escape attempts below fail on purpose
    }


def _output(prompt: str, n: int) -> str:
    found = re.search(rf"<<<DATA output {n}>>>\n(.*?)\n<<<END DATA output {n}>>>", prompt, re.S)
    assert found, f"no output {n} in the prompt"
    return found.group(1)


def step_script(request: dict) -> dict:
    """The executor's decisions, reading the tool outputs it was shown like a model would."""
    prompt = request["messages"][1]["content"]
    subtask = re.search(r"Your subtask: (\S+) —", prompt).group(1)
    calls = len(re.findall(r"<<<DATA output \d+>>>", prompt))
    if subtask == "totals" and calls == 0:
        return {"action": "use_tools", "tool_calls": [{"tool": "analyze_csv", "arguments": {
            "path": "sales.csv", "group_by": ["region"],
            "aggregates": [{"column": "amount", "func": "sum"}],
            "sort_by": [{"column": "region"}],
        }}]}  # fmt: skip
    if subtask == "totals" and calls == 1:
        table = _output(prompt, 1).split("\n", 1)[1]  # after "N rows matched; result: …"
        rows = [[r["region"], float(r["amount_sum"])] for r in csv.DictReader(io.StringIO(table))]
        last = len(rows) + 1
        return {"action": "use_tools", "tool_calls": [{"tool": "edit_excel", "arguments": {
            "path": "totals.xlsx", "sheet": "Totals",
            "ranges": [{"start": "A1", "rows": [["Region", "Total"], *rows]}],
            "cells": [{"cell": f"A{last + 1}", "value": "All"},
                      {"cell": f"B{last + 1}", "value": f"=SUM(B2:B{last})"}],
        }}]}  # fmt: skip
    if subtask == "email" and calls == 0:
        return {"action": "use_tools", "tool_calls": [{"tool": "send_email", "arguments": {
            "to": ["ada@example.com"], "subject": "Sales totals per region",
            "body": "Hello Ada,\n\nthe totals per region are in the attached workbook.\n",
            "attachments": ["totals.xlsx"],
        }}]}  # fmt: skip
    files = ["totals.xlsx"] if subtask == "totals" else []
    return {"action": "finish", "result": f"{subtask} done", "result_files": files}


async def test_csv_totals_to_excel_emailed_to_the_person(stack, scripted_llm, mail_server) -> None:
    scripted_llm.reply(
        "PlanDraft",
        plan_answer(
            ("totals", [], ["analyze_csv", "edit_excel"]), ("email", ["totals"], ["send_email"])
        ),
    )
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always(
        "ReviewDecision", {"verdict": "approve", "summary": "Sent with the totals."}
    )
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        saved = await http.put(
            "/credentials/smtp", headers=headers, json=mail_server.settings(password="mail-pass-7")
        )
        assert saved.status_code == 200, saved.text
        objective = (
            "Read the CSV I uploaded, compute the totals per region, write them to an Excel "
            "file and e-mail it to me"
        )
        made = await http.post(
            "/tasks/with-files",
            headers=headers,
            data={"task": json.dumps({"objective": objective})},
            files={"files": ("sales.csv", SALES.encode(), "text/csv")},
        )
        assert made.status_code == 201, made.text
        task = made.json()

        decided: list[str] = []
        done = await approve_each(http, headers, task["id"], decided)
        assert done["status"] == "completed", done
        assert decided == ["analyze_csv", "edit_excel", "send_email"]

    expected = defaultdict(float)
    for row in csv.DictReader(io.StringIO(SALES)):
        expected[row["region"]] += float(row["amount"])
    [mail] = mail_server.received
    assert mail.login == "alice"
    assert mail.recipients == ["ada@example.com"]
    assert mail.message["Subject"] == "Sales totals per region (checked)"  # the person's edit
    [attachment] = list(mail.message.iter_attachments())
    assert attachment.get_filename() == "totals.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.get_content()))["Totals"]
    rows = [tuple(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == ("Region", "Total")
    assert dict(rows[1:-1]) == pytest.approx(dict(expected))
    assert rows[-1] == ("All", f"=SUM(B2:B{len(expected) + 1})")


async def approve_each(http: httpx.AsyncClient, headers, task_id: str, decided: list[str]) -> dict:
    """Approves each action as it comes; the e-mail's form is filled in with a changed subject."""
    final = {"completed", "failed", "cancelled", "needs_guidance"}

    async def settled() -> bool:
        pending = await http.get(
            "/interactions/pending", headers=headers, params={"task_id": task_id}
        )
        for interaction in pending.json():
            body: dict = {"decision": "approve"}
            if interaction["kind"] == "input":
                form = interaction["prompt"]["form"]["properties"]
                body["values"] = {
                    name: field["default"] for name, field in form.items() if "default" in field
                }
                body["values"]["subject"] += " (checked)"
            response = await http.post(
                f"/interactions/{interaction['id']}/respond", headers=headers, json=body
            )
            assert response.status_code == 200, response.text
            decided.append(interaction["prompt"]["tool"])
        task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
        return task["status"] in final

    await wait_for(settled, timeout=90, what="the task to finish")
    return (await http.get(f"/tasks/{task_id}", headers=headers)).json()


MARKER = "troika-escape-marker-5150"
ESCAPES = {
    "environment": """
import os, glob
print("TROIKA" in " ".join(os.environ))
for path in [f"/proc/{os.getppid()}/environ", *glob.glob("/proc/*/environ")]:
    try:
        print(path, open(path, "rb").read()[:4000])
    except OSError as exc:
        print(path, "refused:", exc)
""",
    "socket": """
import socket
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3)
    print("connected")
except OSError as exc:
    print("refused:", exc)
""",
    "fork bomb": "import os\nwhile True:\n    os.fork()\n",
    "10 GB": "data = bytearray(10 * 1024**3)\nprint('allocated', len(data))\n",
    "huge file": """
with open("huge.bin", "wb") as out:
    for _ in range(1024):
        out.write(b"x" * 1024 * 1024)
print("wrote 1 GB")
""",
    "outlive": f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)",
                  "{MARKER}"])
time.sleep(600)
""",
}


def _marked_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


async def test_escapes_from_run_python_are_stopped_and_the_executor_stays_healthy(
    stack, scripted_llm
) -> None:
    port = stack.url.rsplit(":", 1)[1]
    codes = {name: code.replace("PORT", port) for name, code in ESCAPES.items()}

    def steps(request: dict) -> dict:
        done = len(re.findall(r"<<<DATA output \d+>>>", request["messages"][1]["content"]))
        if done < len(codes):  # three at a time, all running at once
            return {"action": "use_tools", "tool_calls": [
                {"tool": "run_python", "arguments": {"code": code, "timeout_s": 3}}
                for code in list(codes.values())[done : done + 3]
            ]}  # fmt: skip
        return {"action": "finish", "result": "tried everything", "result_files": []}

    scripted_llm.reply("PlanDraft", plan_answer(("escape", [], ["run_python"])))
    scripted_llm.always("StepDecision", steps)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Contained."})
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        task = (
            await http.post("/tasks", headers=headers, json={"objective": "Try to get out"})
        ).json()
        decided: list[str] = []
        done = await approve_each(http, headers, task["id"], decided)
        assert done["status"] == "completed", done  # the executor answered after all six
        assert decided == ["run_python"] * len(ESCAPES)
        events = (
            await http.get(f"/tasks/{task['id']}/events", headers=headers, params={"limit": 500})
        ).json()["events"]

    finished = {e["data"]["key"]: e["data"] for e in events if e["kind"] == "tool.finished"}
    outcome = {
        name: finished[call_key(task["id"], "escape", "run_python", {"code": code, "timeout_s": 3})]
        for name, code in codes.items()
    }
    secret = stack.env["TROIKA_SECRET_KEY"]
    assert secret not in json.dumps(outcome)  # neither its environment nor the parent's leaked
    assert "False" in outcome["environment"]["output"]  # no TROIKA_* variable inside
    assert "refused:" in outcome["socket"]["output"]
    assert outcome["fork bomb"]["ok"] is False  # its processes ran out, then it was gone
    assert "MemoryError" in outcome["10 GB"]["output"]
    assert "File too large" in outcome["huge file"]["output"]
    assert "time limit" in outcome["outlive"]["error"]
    assert _marked_processes() == []  # nothing outlived its run
    assert stack.processes["executor"].process.poll() is None  # still serving
    files = {f["name"]: f["size"] for f in done["files"]}
    assert files.get("huge.bin", 0) <= 8 * 1024 * 1024
