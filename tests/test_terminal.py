"""``troika task``: a person runs a task from the terminal and answers each action at the prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from troika_testkit import scaled
from troika_testkit.agents import plan_answer

from .test_pipeline import PASSWORD, sign_in, step_script

pytestmark = pytest.mark.slow


def troika_task(
    stack, tmp_path, answers: list[str], *args: str, credentials: bool = True
) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TROIKA_USERNAME": "ada",
        "TROIKA_PASSWORD": PASSWORD,
    }
    if not credentials:
        del env["TROIKA_USERNAME"], env["TROIKA_PASSWORD"]
    return subprocess.run(
        [sys.executable, "-m", "troika", "task", "--api", stack.url, *args],
        input="".join(f"{line}\n" for line in answers),
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(90),
        check=False,
    )


async def test_a_task_runs_from_the_terminal_with_each_action_answered_at_the_prompt(
    stack, scripted_llm, tmp_path
) -> None:
    scripted_llm.reply(
        "PlanDraft",
        plan_answer(("intro", [], ["create_file"]), ("summary", ["intro"], ["create_file"])),
    )
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always(
        "ReviewDecision", {"verdict": "approve", "summary": "Both notes are there."}
    )
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)  # the account the terminal signs in with

    # no answers at all: the client stops, and the task keeps waiting for the person
    outline = tmp_path / "outline.md"
    outline.write_text("# Outline\n")
    closed = troika_task(
        stack, tmp_path, [], "Write an intro, then a summary", "--file", str(outline)
    )
    assert closed.returncode == 3, closed.stdout + closed.stderr
    assert "the task keeps waiting" in closed.stdout
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        [task] = (await http.get("/tasks", headers=headers)).json()["items"]
        assert task["status"] == "awaiting_approval"
    # the planner was told of the file the task was made with
    [plan_request] = scripted_llm.asked_for("PlanDraft")
    assert "outline.md" in json.dumps(plan_request["messages"])

    # back to it (signed in by the kept session): approve one call, edit the other
    edited = {"path": "summary-final.md", "content": "# Summary, as I want it\n"}
    answers = ["a", "e", json.dumps(edited)]
    result = troika_task(stack, tmp_path, answers, "--resume", task["id"], credentials=False)

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Plan: plan" in out  # the story from the start, replayed
    assert "── Action waiting for you: create_file (risk: write)" in out
    assert '"content": "# intro\\n"' in out  # the complete arguments are shown
    assert "Task completed. Both notes are there." in out
    assert "file: summary-final.md" in out
    session = tmp_path / "config" / "troika" / "session.json"
    assert oct(session.stat().st_mode & 0o777) == "0o600"

    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        url = f"/tasks/{task['id']}"
        edited_file = await http.get(f"{url}/files/summary-final.md", headers=headers)
        assert edited_file.text == "# Summary, as I want it\n"  # the edit ran, not the proposal
        names = {f["name"] for f in (await http.get(url, headers=headers)).json()["files"]}
        assert names == {"outline.md", "intro.md", "summary-final.md"}
        audit = (await http.get(f"{url}/audit", headers=headers)).json()
        assert [e["action"] for e in audit] == ["approved", "edited", "approved"]
        assert {e["client"]["name"] for e in audit} == {"troika-cli"}


async def test_tasks_are_scheduled_from_the_terminal_and_bad_schedules_refused(
    stack, tmp_path
) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)

    weekly = troika_task(
        stack, tmp_path, [], "Water the plants", "--cron", "0 8 * * 1-5", "--timezone",
        "Europe/Berlin",
    )  # fmt: skip
    assert weekly.returncode == 0, weekly.stdout + weekly.stderr
    assert "Scheduled (" in weekly.stdout
    assert "Europe/Berlin" in weekly.stdout
    assert "troika task --resume" in weekly.stdout

    once = troika_task(
        stack, tmp_path, [], "Send the new year note", "--at", "2099-01-01 09:00", "--timezone",
        "Asia/Tokyo",
    )  # fmt: skip
    assert once.returncode == 0, once.stdout + once.stderr

    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        schedules = {
            s["objective"]: s for s in (await http.get("/schedules", headers=headers)).json()
        }
    assert schedules["Water the plants"]["cron"] == "0 8 * * 1-5"
    assert schedules["Water the plants"]["timezone"] == "Europe/Berlin"
    new_year = datetime.fromisoformat(schedules["Send the new year note"]["next_run_at"])
    assert new_year == datetime(2099, 1, 1, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo

    bad = troika_task(stack, tmp_path, [], "Never", "--cron", "61 * * * *")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "The gateway refused" in bad.stdout
    assert "cron:" in bad.stdout
    unreadable = troika_task(stack, tmp_path, [], "Never", "--at", "next tuesday")
    assert unreadable.returncode == 2
    assert "not a date and time" in unreadable.stderr
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        assert len((await http.get("/schedules", headers=headers)).json()) == 2  # nothing more
