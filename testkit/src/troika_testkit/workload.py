"""The benchmark's workload: what the scripted LLM answers, and the person who submits tasks.

Every task is planned as three notes (two independent, one after the first); the executor
writes each with one ``create_file`` call, which asks for approval, then finishes; the
reviewer approves. That is eight agent answers and three approvals per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from troika_client import ApiError, LiveEvent, LiveFeed, Session
from troika_testkit.agents import plan_answer
from troika_testkit.llm import ScriptedLLM

__all__ = [
    "AGENT_ANSWERS",
    "SUBTASKS",
    "Ending",
    "LogSink",
    "Person",
    "Phase",
    "scripted_llm",
    "step_script",
]

SUBTASKS: tuple[tuple[str, list[str], list[str]], ...] = (
    ("intro", [], ["create_file"]),
    ("facts", [], ["create_file"]),
    ("summary", ["intro"], ["create_file"]),
)
AGENT_ANSWERS = ("plan.produced", "step.proposed", "review.verdict")
_SUBTASK = re.compile(r"Your subtask: (\S+) —")
_STOPPED = ("failed", "cancelled", "needs_guidance")


def step_script(request: dict[str, Any]) -> dict[str, Any]:
    """The executor's answers: each subtask writes its file, then finishes naming it."""
    prompt = request["messages"][-1]["content"]
    match = _SUBTASK.search(prompt)
    subtask = match.group(1) if match else "work"
    if "Tool calls so far in this subtask" not in prompt:
        call = {
            "tool": "create_file",
            "arguments": {"path": f"{subtask}.md", "content": f"# {subtask}\n"},
        }
        return {"action": "use_tools", "tool_calls": [call]}
    return {"action": "finish", "result": f"wrote {subtask}.md", "result_files": [f"{subtask}.md"]}


def scripted_llm() -> ScriptedLLM:
    """The scripted server, answering the workload's plan, steps and review."""
    llm = ScriptedLLM(usage="estimate")
    llm.always("PlanDraft", plan_answer(*SUBTASKS, summary="three notes"))
    llm.always("StepDecision", step_script)
    llm.always("ReviewDecision", {"verdict": "approve", "summary": "All three notes are written."})
    return llm


class LogSink(io.StringIO):
    """Receives the services' prefixed output; keeps the worker's round-trip measurements."""

    def __init__(self, echo: bool = False) -> None:  # noqa: FBT001, FBT002 - a plain switch
        super().__init__()
        self.echo = echo
        self.answers: list[dict[str, Any]] = []
        self.lines = 0
        self._partial = ""

    def write(self, text: str) -> int:
        """Takes a chunk of output."""
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._take(line)
        return len(text)

    def _take(self, line: str) -> None:
        self.lines += 1
        if self.echo:
            sys.stderr.write(line + "\n")
        label, _, rest = line.partition(" | ")
        if not label.strip().startswith("worker") or "answer.applied" not in rest:
            return
        try:
            record = json.loads(rest)
        except ValueError:
            return
        if record.get("event") == "answer.applied":
            self.answers.append(record)


@dataclass(frozen=True)
class Ending:
    """How a task's run ended, as the WebSocket announced it.

    Attributes:
        at: When the announcement arrived (``time.perf_counter``).
        status: ``completed``, a stopped status (``failed``, ``cancelled``, ``needs_guidance``),
            or ``approval`` when answering one of its approvals was refused.
        reason: Why it stopped, when it did not complete.
    """

    at: float
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Phase:
    """Tasks submitted in one part of the workload.

    Attributes:
        ids: Their ids.
        completed: How many completed.
        seconds: From the first submission to the last ending.
    """

    ids: frozenset[str]
    completed: int
    seconds: float

    @property
    def tasks_per_s(self) -> float:
        """Completed tasks per second."""
        return self.completed / self.seconds if self.seconds else 0.0


class Person:
    """One account driving the system through the public API and the WebSocket.

    While ``approving``, every proposed call is approved the moment the WebSocket announces it.
    Each phase (a method) gives up after ``timeout`` seconds. ``task`` holds more fields of each
    task created (a budget).

    Attributes:
        approvals: Approvals answered.
        asked: Approvals requested, per task.
        unfinished: Tasks that stopped without completing, with why.
    """

    def __init__(self, url: str, timeout: float, task: dict[str, Any] | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.task = task or {}
        self.approving = True
        self.approvals = 0
        self.asked: Counter[str] = Counter()
        self.unfinished: dict[str, str] = {}
        self.session = Session.open(url, client_name="troika-bench")
        self._submitted = 0
        self._endings: dict[str, asyncio.Future[Ending]] = {}
        self._first_asks: dict[str, asyncio.Future[None]] = {}
        self._approving: set[asyncio.Task[None]] = set()
        self._answered: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Person:
        self._stack.push_async_callback(self.session.close)
        name = f"bench{secrets.token_hex(4)}"
        await self.session.register(f"{name}@example.com", name, secrets.token_urlsafe(16))
        feed = LiveFeed(self.session.ws_url, self.session.token, refusals=1)
        self._reader = asyncio.create_task(self._read(feed))
        async with asyncio.timeout(self.timeout):
            await feed.connected.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*self._approving)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._stack.aclose()

    # --- the phases ----------------------------------------------------------------------

    async def one(self) -> tuple[str, float, Ending]:
        """Runs one task to its end; returns its id, when it was submitted, and how it ended."""
        async with asyncio.timeout(self.timeout):
            task_id, started = await self.submit()
            return task_id, started, await self._endings[task_id]

    async def batch(self, count: int) -> Phase:
        """Submits ``count`` tasks together and waits for them all."""
        async with asyncio.timeout(self.timeout):
            started = time.perf_counter()
            submitted = await asyncio.gather(*(self.submit() for _ in range(count)))
            endings = await asyncio.gather(*(self._endings[task_id] for task_id, _ in submitted))
        return _phase({task_id for task_id, _ in submitted}, endings, started)

    async def stream(self, count: int, concurrency: int) -> Phase:
        """Runs ``count`` tasks with ``concurrency`` of them in flight until the last is sent."""
        lanes = asyncio.Semaphore(concurrency)
        ids: set[str] = set()
        endings: list[Ending] = []

        async def run_one() -> None:
            try:
                task_id, _ = await self.submit()
                ids.add(task_id)
                endings.append(await self._endings[task_id])
            finally:
                lanes.release()

        async with asyncio.timeout(self.timeout), asyncio.TaskGroup() as group:
            started = time.perf_counter()
            for _ in range(count):
                await lanes.acquire()
                group.create_task(run_one())
        return _phase(ids, endings, started)

    async def pending(self, count: int, *, at_once: int = 32) -> set[str]:
        """Submits ``count`` tasks and waits until each asks for an approval, answering none.

        Returns:
            The ids of those that wait for an answer (a task that stops first is not among them).
        """
        self.approving = False
        posting = asyncio.Semaphore(at_once)

        async def submit() -> str:
            async with posting:
                task_id, _ = await self.submit()
            first = self._first_asks.setdefault(task_id, asyncio.get_running_loop().create_future())
            await asyncio.wait((first, self._endings[task_id]), return_when=asyncio.FIRST_COMPLETED)
            return task_id

        async with asyncio.timeout(self.timeout):
            ids = await asyncio.gather(*(submit() for _ in range(count)))
        return {task_id for task_id in ids if self.asked[task_id]}

    async def submit(self) -> tuple[str, float]:
        """Creates a task; returns its id and when it was submitted."""
        self._submitted += 1
        started = time.perf_counter()
        fields = {"objective": f"Notes #{self._submitted}", **self.task}
        task = await self.session.post("/tasks", fields)
        task_id = str(task["id"])
        self._endings.setdefault(task_id, asyncio.get_running_loop().create_future())
        return task_id, started

    async def prompt_tokens(self, task_id: str) -> int:
        """The prompt tokens the system counted on the task."""
        task = await self.session.get(f"/tasks/{task_id}")
        return int(task["cost"]["prompt_tokens"])

    # --- the WebSocket -------------------------------------------------------------------

    async def _read(self, feed: LiveFeed) -> None:
        try:
            async for event in feed.events():
                self._take(event)
        except asyncio.CancelledError:  # leaving: nobody waits any more
            self._abandon(None)
            raise
        except Exception as exc:  # noqa: BLE001 - every wait learns why the feed ended
            self._abandon(ConnectionError(f"the live feed ended: {exc!r}"))

    def _abandon(self, error: Exception | None) -> None:
        """Ends every wait for an announcement: with ``error``, or cancelled."""
        futures: list[asyncio.Future[Any]] = [*self._endings.values(), *self._first_asks.values()]
        for future in futures:
            if future.done():
                continue
            if error is None:
                future.cancel()
            else:
                future.set_exception(error)

    def _take(self, event: LiveEvent) -> None:
        loop = asyncio.get_running_loop()
        task_id, kind, data = event.task_id, event.kind, event.data
        if kind == "approval.requested":
            self.asked[task_id] += 1
            first = self._first_asks.setdefault(task_id, loop.create_future())
            if not first.done():
                first.set_result(None)
            if self.approving and data["interaction_id"] not in self._answered:
                # an announcement seen twice (the feed resumed) is still one question
                self._answered.add(data["interaction_id"])
                job = asyncio.create_task(self._approve(task_id, data["interaction_id"]))
                self._approving.add(job)
                job.add_done_callback(self._approving.discard)
        elif kind == "task.completed":
            self._end(task_id, Ending(time.perf_counter(), "completed"))
        elif kind == "task.status" and data["status"] in _STOPPED:
            self._end(task_id, Ending(time.perf_counter(), data["status"], data["reason"]))

    def _end(self, task_id: str, ending: Ending) -> None:
        future = self._endings.setdefault(task_id, asyncio.get_running_loop().create_future())
        if future.done():
            return
        future.set_result(ending)
        if ending.status != "completed":
            self.unfinished[task_id] = f"{ending.status}: {ending.reason}"

    async def _approve(self, task_id: str, interaction_id: str) -> None:
        try:
            await self.session.post(
                f"/interactions/{interaction_id}/respond", {"decision": "approve"}
            )
        except ApiError as exc:
            reason = f"answered {exc.status}: {exc.detail}"
            self._end(task_id, Ending(time.perf_counter(), "approval", reason))
        else:
            self.approvals += 1


def _phase(ids: set[str], endings: list[Ending], started: float) -> Phase:
    completed = sum(ending.status == "completed" for ending in endings)
    last = max((ending.at for ending in endings), default=started)
    return Phase(frozenset(ids), completed, last - started)
