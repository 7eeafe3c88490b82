"""The benchmark's executor-bound phase: does throughput grow with executor replicas?

Every tool call takes ``TOOL_S`` seconds (an ``http_request`` to a loopback server that answers
that late), and each replica handles ``CONCURRENCY`` messages at once, so the executors'
capacity — not the pipeline — limits how fast tasks finish. The same batch runs on a stack
with one process per agent service and on one with two; with twice the executors it should
finish in about half the time.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from troika.settings import UpSettings
from troika.stack import Stack
from troika_testkit.agents import llm_env, plan_answer
from troika_testkit.llm import ScriptedLLM
from troika_testkit.ports import free_port
from troika_testkit.workload import LogSink, Person, Phase

__all__ = ["CONCURRENCY", "TASKS", "TOOL_S", "executor_bound", "figures"]

TOOL_S = 2.0
CONCURRENCY = 2
TASKS = 8
_SUBTASKS: tuple[tuple[str, list[str], list[str]], ...] = tuple(
    (name, [], ["http_request"]) for name in ("a", "b", "c")
)


class SlowServer:
    """A loopback server whose every answer takes ``TOOL_S`` seconds; counts what it served."""

    def __init__(self) -> None:
        served = self.served = [0]
        lock = threading.Lock()

        class Slow(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                time.sleep(TOOL_S)
                with lock:
                    served[0] += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"done")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/work"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _step(url: str) -> Any:  # noqa: ANN401 - the scripted server's answer function
    def step(request: dict[str, Any]) -> dict[str, Any]:
        prompt = request["messages"][-1]["content"]
        if "Tool calls so far in this subtask" not in prompt:
            call = {"tool": "http_request", "arguments": {"method": "GET", "url": url}}
            return {"action": "use_tools", "tool_calls": [call]}
        return {"action": "finish", "result": "the work is done"}

    return step


@dataclass(frozen=True)
class Scaled:
    """One stack's run of the batch."""

    replicas: int
    phase: Phase
    tool_calls: int


async def executor_bound(replicas: int, *, timeout: float, echo: bool = False) -> Scaled:
    """Runs ``TASKS`` executor-bound tasks together on a fresh stack with ``replicas``
    processes per agent service."""
    slow = SlowServer()
    data_dir = Path(tempfile.mkdtemp(prefix="troika-bench-"))
    try:
        with ScriptedLLM(usage="estimate") as llm:
            llm.always("PlanDraft", plan_answer(*_SUBTASKS, summary="slow work"))
            llm.always("StepDecision", _step(slow.url))
            llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
            settings = UpSettings(
                data_dir=data_dir, gateway_port=free_port(), web=False, agent_replicas=replicas,
                bus_prefix=f"bench{secrets.token_hex(3)}", log_format="json", log_level="info",
                ready_timeout_s=120, llm_provider="openai", llm_base_url=llm.base_url,
            )  # fmt: skip
            port = slow.url.split(":")[2].split("/")[0]
            env = llm_env(llm) | {
                "TROIKA_CONCURRENCY": str(CONCURRENCY),
                "TROIKA_OUTBOUND_ALLOW_HOSTS": json.dumps([f"127.0.0.1:{port}"]),
                "TROIKA_ACCESS_TOKEN_TTL_S": str(24 * 3600),
            }
            stack = Stack(settings, LogSink(echo=echo), env=env)
            try:
                await stack.start()
                await stack.wait_ready(settings.ready_timeout_s)
                async with Person(stack.gateway_url, timeout) as person:
                    phase = await person.batch(TASKS)
            finally:
                await stack.stop()
    finally:
        slow.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return Scaled(replicas=replicas, phase=phase, tool_calls=slow.served[0])


def figures(one: Scaled, two: Scaled) -> dict[str, Any]:
    """The phase's part of the benchmark's JSON."""
    speedup = two.phase.tasks_per_s / one.phase.tasks_per_s if one.phase.tasks_per_s else 0.0
    return {
        "tool_s": TOOL_S,
        "concurrency_per_replica": CONCURRENCY,
        "tasks": TASKS,
        "tool_calls_per_task": len(_SUBTASKS),
        "tasks_per_s_1_replica": round(one.phase.tasks_per_s, 3),
        "tasks_per_s_2_replicas": round(two.phase.tasks_per_s, 3),
        "seconds_1_replica": round(one.phase.seconds, 2),
        "seconds_2_replicas": round(two.phase.seconds, 2),
        "tasks_completed": [one.phase.completed, two.phase.completed],
        "tool_calls_made": [one.tool_calls, two.tool_calls],
        "speedup": round(speedup, 2),
        "ideal_speedup": 2.0,
    }
