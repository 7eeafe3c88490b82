"""Desktop actions end to end: a person pairs their PC with ``troika-desktop``, approves each
action of a task, and the actions run on that PC's screen (a virtual one, with a window manager
and a Tk form), whether it was connected before the approval or only after; nobody else's PC
hears of them, and a revoked PC gets nothing more."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from troika_testkit import scaled, wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.display import VirtualDisplay

from .test_pipeline import PASSWORD, sign_in

pytestmark = [pytest.mark.slow]

FORM = Path(__file__).parents[1] / "services" / "desktop-agent" / "tests" / "form_app.py"
TEXT = "Grüße aus Troika — 東京 🚀"
MAGENTA = (255, 0, 255)


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    display = VirtualDisplay.start(tmp_path_factory.mktemp("screen"))
    yield display
    display.stop()


class DesktopAgent:
    """``troika-desktop`` as a person runs it: paired once, then running until stopped."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log = home.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "troika_desktop", "--home", str(self.home), "--no-keyring",
             *args],
            env=self.env, capture_output=True, text=True, timeout=scaled(timeout), check=False,
        )  # fmt: skip

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "troika_desktop", "--home", str(self.home), "--no-keyring",
                 "run"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@pytest.fixture
def desktop_agents(tmp_path, screen):
    made: list[DesktopAgent] = []

    def make(name: str) -> DesktopAgent:
        agent = DesktopAgent(tmp_path / f"desktop-{name}", screen.env)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()


@pytest.fixture
def form(screen, tmp_path):
    saved = tmp_path / "form.txt"
    process = subprocess.Popen(
        [sys.executable, str(FORM), str(saved), "Troika Form"], env={**os.environ, **screen.env}
    )
    yield saved
    process.terminate()
    process.wait(timeout=10)


class Executor:
    """The executor's model: look at the form, focus it, type into it, click its button (found
    by its picture); it keeps the screenshots it was shown."""

    STEPS = (
        ("desktop_screenshot", {"window": "troika form"}),
        ("desktop_focus_window", {"title": "troika form"}),
        ("desktop_type_text", {"text": TEXT}),
        ("desktop_click", {"image": "button.png"}),
    )

    def __init__(self) -> None:
        self.shown: list[Image.Image] = []

    def __call__(self, request: dict) -> dict:
        content = request["messages"][1]["content"]
        if isinstance(content, list):  # text and the latest screenshot
            [text] = [part["text"] for part in content if part["type"] == "text"]
            for part in content:
                if part["type"] == "image_url":
                    data = part["image_url"]["url"].removeprefix("data:image/png;base64,")
                    self.shown.append(Image.open(io.BytesIO(base64.b64decode(data))))
        else:
            text = content
        done = len(re.findall(r"<<<DATA output \d+>>>", text))
        if done < len(self.STEPS):
            tool, arguments = self.STEPS[done]
            return {"action": "use_tools", "tool_calls": [{"tool": tool, "arguments": arguments}]}
        return {"action": "finish", "result": "typed the text and saved the form"}


def code_from_the_terminal(url: str, tmp_path: Path) -> str:
    """``troika devices pair-code``, as the README says: the code it prints."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TROIKA_USERNAME": "ada",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "TROIKA_PASSWORD": PASSWORD}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "troika", "devices", "pair-code", "--api", url],
        env=env, capture_output=True, text=True, timeout=scaled(60), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"troika-desktop pair (\S+) ([A-Z0-9]{4}-[A-Z0-9]{4})", done.stdout)
    assert found, done.stdout
    assert found.group(1) == url
    return found.group(2)


async def pair(agent: DesktopAgent, url: str, code: str, name: str) -> None:
    done = agent.command("pair", url, code, "--name", name)
    assert done.returncode == 0, done.stderr
    assert f"Paired as {name!r}" in done.stdout


async def events(http, headers, task_id: str) -> list[dict]:
    return (await http.get(f"/tasks/{task_id}/events", headers=headers)).json()["events"]


async def approve_pending(http, headers, task_id: str, decided: list[str]) -> None:
    pending = await http.get("/interactions/pending", headers=headers, params={"task_id": task_id})
    for interaction in pending.json():
        answered = await http.post(
            f"/interactions/{interaction['id']}/respond", headers=headers,
            json={"decision": "approve"},
        )  # fmt: skip
        assert answered.status_code == 200, answered.text
        decided.append(interaction["prompt"]["tool"])


def button_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), MAGENTA).save(out, format="PNG")
    return out.getvalue()


async def test_approved_actions_run_on_the_persons_own_paired_pc_only(  # noqa: PLR0915 - one story
    stack, scripted_llm, desktop_agents, form, tmp_path
) -> None:
    scripted_llm.reply(
        "PlanDraft",
        plan_answer(("fill", [], ["desktop_focus_window", "desktop_type_text", "desktop_click"])),
    )
    executor = Executor()
    scripted_llm.always("StepDecision", executor)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "The form is saved."})
    ada_pc, bob_pc = desktop_agents("ada"), desktop_agents("bob")
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        ada = await sign_in(http)
        await http.post("/auth/register", json={"email": "bob@example.com", "username": "bob",
                                                "password": PASSWORD})  # fmt: skip
        bob_tokens = await http.post("/auth/login", json={"login": "bob", "password": PASSWORD})
        bob = {"Authorization": f"Bearer {bob_tokens.json()['access_token']}"}
        await pair(ada_pc, stack.url, code_from_the_terminal(stack.url, tmp_path), "ada-laptop")
        bob_code = (await http.post("/devices/pairing-codes", headers=bob)).json()["code"]
        await pair(bob_pc, stack.url, bob_code, "bob-desktop")
        bob_pc.start()  # Bob's PC is connected all along; Ada's not yet

        made = await http.post(
            "/tasks/with-files",
            headers=ada,
            data={"task": '{"objective": "Type a greeting into the Troika form and save it"}'},
            files={"files": ("button.png", button_png(), "image/png")},
        )
        assert made.status_code == 201, made.text
        task_id = made.json()["id"]
        decided: list[str] = []

        async def first_waits() -> bool:
            await approve_pending(http, ada, task_id, decided)
            return any(e["kind"] == "desktop.waiting" for e in await events(http, ada, task_id))

        await wait_for(first_waits, timeout=60, what="the first action to wait for Ada's PC")
        [waiting] = [e for e in await events(http, ada, task_id) if e["kind"] == "desktop.waiting"]
        assert waiting["data"]["device"] == "ada-laptop"
        assert (await http.get(f"/tasks/{task_id}", headers=ada)).json()["status"] != "completed"

        ada_pc.start()  # the waiting action runs as soon as her PC connects

        async def finished() -> bool:
            await approve_pending(http, ada, task_id, decided)
            task = (await http.get(f"/tasks/{task_id}", headers=ada)).json()
            return task["status"] in ("completed", "failed", "cancelled", "needs_guidance")

        await wait_for(finished, timeout=90, what="the task to finish")
        task = (await http.get(f"/tasks/{task_id}", headers=ada)).json()
        assert task["status"] == "completed", (task, ada_pc.output())
        assert decided == [tool for tool, _ in Executor.STEPS]
        assert form.read_text(encoding="utf-8") == TEXT
        finished_events = [e["data"] for e in await events(http, ada, task_id)
                           if e["kind"] == "tool.finished"]  # fmt: skip
        assert all(e["ok"] for e in finished_events), finished_events
        assert (
            "screenshot of the window 'Troika Form', 420 by 220 pixels"
            in finished_events[0]["output"]
        )
        assert "focused 'Troika Form'" in finished_events[1]["output"]
        # The model (which reads images) was shown the form as it was: its magenta button.
        assert executor.shown, "no screenshot reached the model"
        assert executor.shown[0].size == (420, 220)
        assert MAGENTA in {c for _, c in executor.shown[0].convert("RGB").getcolors(1 << 16)}
        shots = list((stack.data_dir / "workspaces" / task_id / ".shots").glob("*.png"))
        assert shots, "the gateway keeps it for the model meanwhile"
        assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in shots)
        listed = (await http.get(f"/tasks/{task_id}/files", headers=ada)).json()
        assert not any(".shots" in f["name"] for f in listed)  # not one of the task's files
        assert not (bob_pc.home / "done.jsonl").exists(), "Bob's PC heard of Ada's actions"
        assert "→" not in bob_pc.output()

        # Bob's kill switch (he holds the hotkey on this shared screen) stops his agent.
        await asyncio.to_thread(subprocess.run, ["xdotool", "key", "ctrl+alt+Escape"],
                                env={**os.environ, **bob_pc.env}, check=True)  # fmt: skip
        assert await asyncio.to_thread(bob_pc.process.wait, scaled(15)) == 4, bob_pc.output()
        assert "kill switch: stopped" in bob_pc.output()
        assert ada_pc.process.poll() is None, "Ada's agent goes on"

        # Ada removes her PC: its connection ends at once, and it cannot come back.
        [device] = (await http.get("/devices", headers=ada)).json()
        assert device["online"] is True
        assert (await http.delete(f"/devices/{device['id']}", headers=ada)).status_code == 204
        code = await asyncio.to_thread(ada_pc.process.wait, scaled(15))
        assert code == 2, ada_pc.output()
        again = ada_pc.command("run")
        assert again.returncode == 2
        assert "refused" in again.stdout
