"""``troika task "objective"``: run a task from the terminal, answering its approvals at the prompt.

It creates the task (with any files), follows its events live over the WebSocket (replaying
from the start, so nothing is missed), and whenever an action waits for the person it shows the
tool, its risk and the complete arguments, and asks: approve, deny (with a reason), edit the
arguments, or approve and stop asking for this tool in this task. Forms are filled in field by
field. When the agents are stuck it shows why and takes the person's instructions.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from troika.client import open_session
from troika_client import ApiError, LiveFeed, LiveRefused, Session

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EXIT_INPUT_CLOSED", "Terminal", "local_zone", "run_task"]

EXIT_FAILED = 1
EXIT_INPUT_CLOSED = 3
_REFUSALS = 3
_FINAL = {"completed": 0, "failed": EXIT_FAILED, "cancelled": EXIT_FAILED}


class InputClosed(Exception):
    """Standard input ended while a question waited."""


@dataclass
class Terminal:
    """Where questions are asked and the story is told."""

    out: IO[str] = field(default_factory=lambda: sys.stdout)
    inp: IO[str] = field(default_factory=lambda: sys.stdin)

    def say(self, text: str = "") -> None:
        """Prints a line."""
        self.out.write(text + "\n")
        self.out.flush()

    async def ask(self, question: str) -> str:
        """Asks and waits for a line (without blocking the live events).

        Raises:
            InputClosed: There is no more input.
        """
        self.out.write(question)
        self.out.flush()
        line = await asyncio.to_thread(self.inp.readline)
        if not line:
            raise InputClosed
        return line.strip()

    async def ask_secret(self, question: str) -> str:
        """Asks for a secret (a password a web page needs): not echoed on a terminal."""
        if self.inp.isatty():
            return str(await asyncio.to_thread(getpass.getpass, question)).strip()
        return await self.ask(question)


async def sign_in(session: Session, terminal: Terminal) -> None:
    """The kept session, else ``TROIKA_USERNAME``/``TROIKA_PASSWORD``, else a prompt."""
    if await session.resume():
        return
    login = os.environ.get("TROIKA_USERNAME") or await terminal.ask("Username or e-mail: ")
    password = os.environ.get("TROIKA_PASSWORD") or str(
        await asyncio.to_thread(getpass.getpass, "Password: ")
    )
    await session.login(login, password)


def _plan(data: dict[str, Any]) -> str:
    steps = "\n".join(
        f"  - {s['id']}: {s['title']}"
        + (f" (after {', '.join(s['depends_on'])})" if s["depends_on"] else "")
        for s in data.get("subtasks", [])
    )
    return f"Plan: {data.get('summary', '')}\n{steps}"


def _finished(data: dict[str, Any]) -> str:
    if not data.get("ok"):
        return f"  {data['tool']} failed: {data.get('error')}"
    first = (data.get("output") or "").strip().splitlines()
    return f"  {data['tool']} done" + (f": {first[0][:120]}" if first else "")


def _verdict(data: dict[str, Any]) -> str:
    if data.get("approved"):
        return f"Review: approved. {data.get('summary', '')}"
    return f"Review: sent back for revision. {data.get('summary', '')}"


_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "task.created": lambda d: f"Task created: {d.get('title', '')}",
    "plan.ready": _plan,
    "plan.edited": lambda d: "The plan was changed:\n" + _plan(d),
    "plan.accepted": lambda _: "The plan was accepted; the work starts.",
    "step.requested": lambda d: f"[{d['subtask']}] thinking (step {d['step']})…",
    "tool.approved": lambda d: f"  approved {d['tool']} (by {d.get('by', 'you')})",
    "tool.denied": lambda d: f"  denied {d['tool']}: {d.get('reason', '')}",
    "tool.finished": _finished,
    "subtask.done": lambda d: f"[{d['subtask']}] done: {d.get('result', '')}",
    "review.requested": lambda d: f"Reviewing (round {d.get('round', 1)})…",
    "review.verdict": _verdict,
    "approval.expired": lambda d: f"  the approval for {d.get('tool')} expired",
    "desktop.waiting": lambda d: (
        f"  {d.get('tool')} waits for your PC {d.get('device')!r} to connect (start troika-desktop)"
    ),
    "task.cancelled": lambda _: "Task cancelled.",
}


def describe(kind: str, data: dict[str, Any]) -> str | None:
    """One event as a line for people; ``None`` for events not worth a line."""
    line = _LINES.get(kind)
    return line(data) if line else None


class TaskRunner:
    """Follows one task to its end, answering what waits for the person."""

    def __init__(self, session: Session, terminal: Terminal, task_id: str) -> None:
        self.session = session
        self.terminal = terminal
        self.task_id = task_id
        self.asked: set[str] = set()

    async def run(self) -> int:
        """Returns the exit status: 0 completed, 1 failed or cancelled, 3 input closed.

        The live view replays the task's events from the start, and after a lost connection
        (the gateway restarted, the access token expired) resumes after the last one shown.

        Raises:
            ApiError: The session ended and cannot be renewed (401).
        """
        feed = LiveFeed(
            self.session.ws_url, self.session.token, {self.task_id: 0}, refusals=_REFUSALS
        )
        try:
            async with contextlib.aclosing(feed.events()) as events:
                async for event in events:
                    if event.task_id != self.task_id:
                        continue
                    status = await self.on_event(event.kind, event.data)
                    if status is not None:
                        return status
        except LiveRefused as exc:
            raise ApiError(401, f"the live view refused the session: {exc}; sign in again") from exc
        raise AssertionError("the live feed ended")  # pragma: no cover - it never does

    async def on_event(self, kind: str, data: dict[str, Any]) -> int | None:
        """Shows an event and answers what it asks; the exit status once the task ends."""
        if (line := describe(kind, data)) is not None:
            self.terminal.say(line)
        if kind == "approval.requested":
            await self.answer(data["interaction_id"])
        elif kind == "task.needs_guidance":
            await self.guide(data)
        elif kind == "task.status" and data.get("status") == "awaiting_plan_review":
            await self.review_plan()
        elif kind == "task.completed" or (kind == "task.status" and data.get("status") in _FINAL):
            return await self.finish()
        return None

    async def answer(self, interaction_id: str) -> None:
        """Asks the person about one action, until the gateway accepts the answer."""
        if interaction_id in self.asked:
            return
        self.asked.add(interaction_id)
        interaction = await self.session.get(f"/interactions/{interaction_id}")
        if interaction["status"] != "pending":
            return  # answered already (a replayed event)
        self.show(interaction["prompt"])
        while True:
            body = await self.decide(interaction)
            try:
                await self.session.post(f"/interactions/{interaction_id}/respond", body)
            except ApiError as exc:
                self.terminal.say(f"Not accepted: {exc.detail}")
                for error in exc.errors:
                    self.terminal.say(f"  {error.get('field')}: {error.get('message')}")
                if exc.status == 409:
                    return
                continue
            return

    def show(self, prompt: dict[str, Any]) -> None:
        """The whole action: tool, risk, what it does, and every argument in full."""
        say = self.terminal.say
        say()
        say(f"── Action waiting for you: {prompt['tool']} (risk: {prompt['risk']}) " + "─" * 8)
        if prompt.get("description"):
            say(f"What it does: {prompt['description']}")
        if prompt.get("subtask"):
            say(f"For subtask:  {prompt['subtask']}")
        say("Arguments:")
        say(json.dumps(prompt.get("arguments", {}), indent=2, ensure_ascii=False))

    async def decide(self, interaction: dict[str, Any]) -> dict[str, Any]:
        """The person's answer, as the respond endpoint takes it."""
        form = interaction["prompt"].get("form")
        choices = "[a]pprove, [d]eny, [e]dit, approve and [t]rust it for this task"
        if form:
            choices = "[f]ill in and approve, [d]eny"
        while True:
            choice = (await self.terminal.ask(f"{choices}? ")).lower()[:1]
            if choice == "d":
                reason = await self.terminal.ask("Reason (the agent sees it; optional): ")
                return {"decision": "deny", "reason": reason}
            if form and choice in ("f", "a"):
                return {"decision": "approve", "values": await self.fill(form)}
            if not form and choice == "a":
                return {"decision": "approve"}
            if not form and choice == "t":
                return {"decision": "approve", "remember": "task"}
            if not form and choice == "e":
                text = await self.terminal.ask("New arguments as JSON (one line): ")
                try:
                    arguments = json.loads(text)
                except ValueError as exc:
                    self.terminal.say(f"That is not JSON: {exc}")
                    continue
                return {"decision": "approve", "arguments": arguments}

    async def fill(self, form: dict[str, Any]) -> dict[str, Any]:
        """Asks for each field of the form; an empty answer keeps the proposed value."""
        values: dict[str, Any] = {}
        for name, spec in form.get("properties", {}).items():
            default = spec.get("default")
            secret = spec.get("format") == "password"
            hint = f" [{default}]" if default not in (None, "") and not secret else ""
            ask = self.terminal.ask_secret if secret else self.terminal.ask
            text = await ask(f"{spec.get('description') or spec.get('title') or name}{hint}: ")
            if not text:
                if default is not None:
                    values[name] = default
                continue
            values[name] = _typed(text, spec.get("type"))
        return values

    async def review_plan(self) -> None:
        """The plan waits for the person: start it as shown, or cancel (it can be changed in
        the web app instead, where this prompt can be left open)."""
        if (await self.session.get(f"/tasks/{self.task_id}"))["status"] != "awaiting_plan_review":
            return  # a replayed event from before: answered already
        text = await self.terminal.ask(
            "\nThe plan waits for your review. Start it as shown? [y]es, or [c]ancel the task "
            "(to change it, open the task in the web app): "
        )
        try:
            if text.lower().startswith("c"):
                await self.session.post(f"/tasks/{self.task_id}/cancel", {})
            elif text.lower().startswith("y"):
                await self.session.call("PUT", f"/tasks/{self.task_id}/plan", json={"start": True})
        except ApiError as exc:
            self.terminal.say(f"Not accepted: {exc.detail}")

    async def guide(self, data: dict[str, Any]) -> None:
        """The agents are stuck: shows why and passes on the person's instructions."""
        if (await self.session.get(f"/tasks/{self.task_id}"))["status"] != "needs_guidance":
            return  # a replayed event from before: answered already
        self.terminal.say(f"\nThe agents need your guidance: {data.get('reason')}")
        text = await self.terminal.ask(
            "Your instructions (start with 'replan:' to re-plan, or type 'cancel'): "
        )
        if text.lower() == "cancel":
            body = {"action": "cancel"}
        elif text.lower().startswith("replan:"):
            body = {"action": "replan", "text": text.split(":", 1)[1].strip()}
        else:
            body = {"action": "continue", "text": text}
        try:
            await self.session.post(f"/tasks/{self.task_id}/guidance", body)
        except ApiError as exc:
            self.terminal.say(f"Not accepted: {exc.detail}")

    async def finish(self) -> int:
        """Prints the outcome and the files; the exit status."""
        task = await self.session.get(f"/tasks/{self.task_id}")
        self.terminal.say()
        self.terminal.say(
            f"Task {task['status']}." + (f" {task['result']}" if task.get("result") else "")
        )
        for file in task.get("files", []):
            url = f"{self.session.api}/tasks/{self.task_id}/files/{file['name']}"
            self.terminal.say(f"  file: {file['name']} ({file['size']} bytes)  {url}")
        return _FINAL.get(task["status"], EXIT_FAILED)


def _typed(text: str, kind: object) -> object:
    if kind == "boolean":
        return text.lower() in ("y", "yes", "true", "1")
    if kind in ("integer", "number"):
        try:
            return int(text) if kind == "integer" else float(text)
        except ValueError:
            return text  # the gateway says what is wrong with it
    return text


async def _say_when(session: Session, terminal: Terminal, task_id: str) -> None:
    """Tells when a task just scheduled runs, and how to follow it."""
    schedules = await session.get("/schedules")
    found = next((s for s in schedules if s.get("next_task_id") == task_id), None)
    if found is not None:
        terminal.say(
            f"Scheduled ({found['description']}, {found['timezone']}): "
            f"next run at {found['next_run_at']}."
        )
    terminal.say(
        f"Follow it when it runs with `troika task --resume {task_id}`; "
        "the schedules are listed in the web app."
    )


def local_zone() -> str:
    """This machine's IANA time zone (``TZ``, ``/etc/timezone`` or ``/etc/localtime``), else UTC."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with contextlib.suppress(OSError):
        candidates.append(str(Path("/etc/localtime").readlink()).partition("zoneinfo/")[2])
    known = zoneinfo.available_timezones()
    return next((name for name in candidates if name in known), "UTC")


async def run_task(
    api: str,
    objective: str | None,
    *,
    files: list[Path],
    resume: str | None = None,
    schedule: dict[str, str] | None = None,
    terminal: Terminal | None = None,
) -> int:
    """Creates (or follows) a task and stays with it until it ends; a task made with a
    ``schedule`` (``run_at`` or ``cron``, with ``timezone``) is only made: it runs later."""
    terminal = terminal or Terminal()
    session = open_session(api)
    try:
        await sign_in(session, terminal)
        if resume:
            task_id = resume
        else:
            task = await session.create_task({"objective": objective, **(schedule or {})}, files)
            task_id = str(task["id"])
            terminal.say(f"Task {task_id}: {objective}")
            if task["status"] == "scheduled":
                await _say_when(session, terminal, task_id)
                return 0
        return await TaskRunner(session, terminal, task_id).run()
    except InputClosed:
        terminal.say("\nNo more input: the task keeps waiting; "
                     "continue with `troika task --resume <id>`.")  # fmt: skip
        return EXIT_INPUT_CLOSED
    except ApiError as exc:
        terminal.say(f"The gateway refused: {exc.detail}")
        for error in exc.errors:
            terminal.say(f"  {error.get('field', '?')}: {error.get('message', '')}")
        return EXIT_FAILED
    finally:
        await session.close()
