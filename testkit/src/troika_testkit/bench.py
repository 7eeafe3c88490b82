"""``make bench``: the whole pipeline under a fixed workload, measured.

The real services run as processes, started by the same code as ``troika up`` (embedded NATS
and Valkey unless ``TROIKA_NATS_URL`` / ``TROIKA_REDIS_URL`` name servers; SQLite in a fresh
data directory unless ``TROIKA_DATABASE_URL`` names a database), and the scripted LLM answers
at once. The benchmark drives them through the public API as a person would: one account,
every task submitted together, and each proposed tool call approved as soon as the WebSocket
announces it. It runs the workload twice, with one and with two processes per agent service.

Written to the output file (JSON):

``step_overhead_ms_p50`` / ``_p99``
    Per agent answer (plan, executor step, review): the time from the request's creation to
    the answer's commit, less the LLM call's own latency. Read from the worker's
    ``answer.applied`` log lines, one-replica run.
``tasks_per_s`` / ``tasks_per_s_2_replicas``
    Tasks completed per second, from the first ``POST /tasks`` to the last completion.
``peak_rss_mb`` / ``peak_rss_mb_2_replicas``
    Each process's resident-memory high-water mark (the kernel's ``VmHWM``).
``llm_prompt_tokens_per_task``
    Prompt tokens a task spends, as the system itself accounts them (the scripted server
    counts about four characters of messages and tool schemas per token).

    uv run python -m troika_testkit.bench --out var/bench/pipeline.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from troika.embedded import free_port
from troika.settings import UpSettings
from troika.stack import Stack
from troika_testkit.agents import llm_env, plan_answer
from troika_testkit.llm import ScriptedLLM

__all__ = ["Run", "main", "measure"]

TARGET_STEP_OVERHEAD_MS = 5.0
SUBTASKS: tuple[tuple[str, list[str], list[str]], ...] = (
    ("intro", [], ["create_file"]),
    ("facts", [], ["create_file"]),
    ("summary", ["intro"], ["create_file"]),
)
AGENT_ANSWERS = ("plan.produced", "step.proposed", "review.verdict")
_SUBTASK = re.compile(r"Your subtask: (\S+) —")


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
    llm.always("ReviewDecision", {"approved": True, "summary": "All three notes are written."})
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


@dataclass
class Run:
    """One stack's runs of the workload.

    Attributes:
        replicas: Processes per agent service.
        tasks: Tasks submitted together in the measured phase.
        completed: Of those, how many completed.
        seconds: From the first submission to the last completion.
        unloaded: Task ids of the one-at-a-time phase (step overhead without queueing).
        loaded: Task ids of the all-at-once phase.
    """

    replicas: int
    tasks: int
    completed: int = 0
    seconds: float = 0.0
    approvals: int = 0
    unloaded: set[str] = field(default_factory=set)
    loaded: set[str] = field(default_factory=set)
    prompt_tokens: list[int] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    unfinished: dict[str, str] = field(default_factory=dict)

    @property
    def tasks_per_s(self) -> float:
        """Completed tasks per second of the measured phase."""
        return self.completed / self.seconds if self.seconds else 0.0

    def samples(
        self, field_name: str, tasks: set[str], kinds: tuple[str, ...] = AGENT_ANSWERS
    ) -> list[float]:
        """A measurement of the ``answer.applied`` lines of ``tasks``' answers of ``kinds``."""
        return [
            float(record[field_name])
            for record in self.answers
            if record.get("task_id") in tasks and record.get("type") in kinds
        ]

    def p50_by_answer(self, field_name: str) -> dict[str, float]:
        """The median of a measurement per answer type, all-at-once phase."""
        kinds = (*AGENT_ANSWERS, "tool.result")
        return {
            kind: round(percentile(self.samples(field_name, self.loaded, (kind,)), 50), 2)
            for kind in kinds
        }


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Person:
    """One account driving the system through the public API and the WebSocket.

    Every proposed call is approved the moment the WebSocket announces it.
    """

    def __init__(self, url: str, run: Run, timeout: float) -> None:
        self.url = url
        self.run = run
        self.timeout = timeout
        self.http = httpx.AsyncClient(base_url=url, timeout=60)
        self.headers: dict[str, str] = {}
        self._approvals: set[asyncio.Task[None]] = set()
        self._stack = contextlib.AsyncExitStack()
        self._socket: websockets.ClientConnection | None = None

    async def __aenter__(self) -> Person:
        await self._stack.enter_async_context(self.http)
        name = f"bench{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(16)
        account = {"email": f"{name}@example.com", "username": name, "password": password}
        (await self.http.post("/auth/register", json=account)).raise_for_status()
        login = await self.http.post("/auth/login", json={"login": name, "password": password})
        token = str(login.raise_for_status().json()["access_token"])
        self.headers = {"Authorization": f"Bearer {token}"}
        ws_url = self.url.replace("http://", "ws://", 1) + "/ws"
        self._socket = await self._stack.enter_async_context(
            websockets.connect(ws_url, max_size=None)
        )
        await self._socket.send(json.dumps({"type": "auth", "token": token}))
        hello = json.loads(await self._socket.recv())
        if hello.get("type") != "ready":
            raise RuntimeError(f"the WebSocket refused the session: {hello}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*self._approvals)
        await self._stack.aclose()

    async def _approve(self, task_id: str, interaction_id: str) -> None:
        answer = await self.http.post(
            f"/interactions/{interaction_id}/respond",
            headers=self.headers,
            json={"decision": "approve"},
        )
        if answer.is_success:
            self.run.approvals += 1
        else:
            self.run.unfinished[task_id] = f"approval answered {answer.status_code}"

    async def tasks(self, count: int) -> tuple[set[str], int]:
        """Submits ``count`` tasks together; returns their ids and how many completed."""
        assert self._socket is not None  # noqa: S101 - entered first
        created = await asyncio.gather(
            *(
                self.http.post("/tasks", headers=self.headers, json={"objective": f"Notes #{n}"})
                for n in range(count)
            )
        )
        ids = {response.raise_for_status().json()["id"] for response in created}
        waiting, completed = set(ids), 0
        async with asyncio.timeout(self.timeout):
            while waiting - self.run.unfinished.keys():
                try:
                    event = json.loads(await asyncio.wait_for(self._socket.recv(), 1.0))
                except TimeoutError:
                    continue
                if event.get("type") != "event" or event["task_id"] not in ids:
                    continue
                task_id, kind, data = event["task_id"], event["kind"], event["data"]
                if kind == "approval.requested":
                    job = asyncio.create_task(self._approve(task_id, data["interaction_id"]))
                    self._approvals.add(job)
                    job.add_done_callback(self._approvals.discard)
                elif kind == "task.completed":
                    completed += 1
                    waiting.discard(task_id)
                elif kind == "task.status" and data["status"] in _STOPPED:
                    self.run.unfinished[task_id] = f"{data['status']}: {data['reason']}"
                    waiting.discard(task_id)
        return ids, completed

    async def prompt_tokens(self, task_id: str) -> int:
        """The prompt tokens the system counted on the task."""
        task = (await self.http.get(f"/tasks/{task_id}", headers=self.headers)).json()
        return int(task["cost"]["prompt_tokens"])


_STOPPED = ("failed", "cancelled", "needs_guidance")


async def _drive(url: str, run: Run, timeout: float, *, one_at_a_time: int) -> None:
    """Warms up, runs tasks one at a time, then all of them at once."""
    async with Person(url, run, timeout) as person:
        await person.tasks(1)  # warm-up: first connections, imports, prepared statements
        for _ in range(one_at_a_time):
            ids, _ = await person.tasks(1)
            run.unloaded |= ids
        started = time.perf_counter()
        run.loaded, run.completed = await person.tasks(run.tasks)
        run.seconds = time.perf_counter() - started
        run.prompt_tokens = [await person.prompt_tokens(task) for task in sorted(run.loaded)]


async def measure(
    tasks: int,
    replicas: int,
    *,
    one_at_a_time: int = 5,
    timeout: float = 600,
    echo: bool = False,
) -> Run:
    """Runs the workload on a fresh stack and returns what it measured."""
    run = Run(replicas=replicas, tasks=tasks)
    data_dir = Path(tempfile.mkdtemp(prefix="troika-bench-"))
    sink = LogSink(echo=echo)
    with scripted_llm() as llm:
        settings = UpSettings(
            data_dir=data_dir,
            gateway_port=free_port(),
            web=False,  # the pipeline is measured through the API; the web app only adds a build
            agent_replicas=replicas,
            bus_prefix=f"bench{secrets.token_hex(3)}",
            log_format="json",
            log_level="info",
            ready_timeout_s=120,
            llm_provider="openai",
            llm_base_url=llm.base_url,
        )
        stack = Stack(settings, sink, env=llm_env(llm))
        try:
            await stack.start()
            await stack.wait_ready(settings.ready_timeout_s)
            await _drive(stack.gateway_url, run, timeout, one_at_a_time=one_at_a_time)
            assert stack.supervisor is not None  # noqa: S101 - started above
            for child in stack.supervisor.children:
                if child.pid is not None:
                    run.peak_rss_mb[child.spec.name] = round(_peak_rss_mb(child.pid), 1)
        finally:
            await stack.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    run.answers = sink.answers
    return run


def report(one: Run, two: Run) -> dict[str, Any]:
    """The benchmark's JSON document."""
    loaded = one.samples("overhead_ms", one.loaded)
    unloaded = one.samples("overhead_ms", one.unloaded)
    p50 = percentile(loaded, 50)
    tokens = one.prompt_tokens
    return {
        "benchmark": "pipeline",
        "workload": {
            "tasks": one.tasks,
            "subtasks_per_task": len(SUBTASKS),
            "tool_calls_per_subtask": 1,
            "submitted": "all at once, after a warm-up task and tasks run one at a time",
            "approvals": "answered through the API as the WebSocket announces them",
            "llm": "scripted, answering at once",
        },
        "step_overhead_ms_p50": round(p50, 2),
        "step_overhead_ms_p99": round(percentile(loaded, 99), 2),
        "step_overhead_target_ms_p50": TARGET_STEP_OVERHEAD_MS,
        "step_overhead_meets_target": p50 < TARGET_STEP_OVERHEAD_MS,
        "step_overhead_ms_p50_one_task_at_a_time": round(percentile(unloaded, 50), 2),
        "step_overhead_ms_p99_one_task_at_a_time": round(percentile(unloaded, 99), 2),
        "step_overhead_ms_p50_by_answer": one.p50_by_answer("overhead_ms"),
        "to_agent_ms_p50_by_answer": one.p50_by_answer("there_ms"),
        "back_to_commit_ms_p50_by_answer": one.p50_by_answer("back_ms"),
        "agent_steps_measured": len(loaded),
        "tasks_per_s": round(one.tasks_per_s, 3),
        "tasks_per_s_2_replicas": round(two.tasks_per_s, 3),
        "seconds": round(one.seconds, 2),
        "seconds_2_replicas": round(two.seconds, 2),
        "tasks_completed": one.completed,
        "tasks_completed_2_replicas": two.completed,
        "approvals_answered": one.approvals + two.approvals,
        "unfinished": {**one.unfinished, **two.unfinished},
        "peak_rss_mb": one.peak_rss_mb,
        "peak_rss_mb_2_replicas": two.peak_rss_mb,
        "llm_prompt_tokens_per_task": round(statistics.fmean(tokens), 1) if tokens else 0,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    one = await measure(
        args.tasks, 1, one_at_a_time=args.one_at_a_time, timeout=args.timeout, echo=args.verbose
    )
    two = await measure(args.tasks, 2, one_at_a_time=0, timeout=args.timeout, echo=args.verbose)
    return report(one, two)


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and writes its JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m troika_testkit.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=50, help="tasks per run (default 50)")
    parser.add_argument(
        "--one-at-a-time", type=int, default=5, help="tasks run singly first (default 5)"
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench/pipeline.json"))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument("--verbose", action="store_true", help="echo the services' output")
    args = parser.parse_args(argv)
    result = asyncio.run(_main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + f"\nwritten to {args.out}\n")
    if result["unfinished"] or result["tasks_completed"] < args.tasks:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
