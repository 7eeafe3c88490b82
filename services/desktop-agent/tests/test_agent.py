"""The agent's side of the connection: it acts only on actions sealed for this PC, never twice,
stops at the kill switch, and keeps reconnecting until the gateway refuses it."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import serve

from troika_desktop.actions import KillSwitch, Outcome
from troika_desktop.agent import EXIT_KILLED, EXIT_REVOKED, Agent
from troika_desktop.ledger import Ledger
from troika_desktop.pairing import Pairing
from troika_shared.desktop import device_key, seal_action
from troika_testkit import scaled

APPROVAL_KEY = secrets.token_bytes(32)
DEVICE = "d" * 32


@dataclass
class Recorder:
    """Stands in for the display: records what the agent carried out."""

    done: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    kill_on: str = ""
    shots: Any = None

    def run(self, _task: str, tool: str, arguments: dict, _files: dict) -> Outcome:
        if tool == self.kill_on:
            raise KillSwitch
        self.done.append((tool, arguments))
        return Outcome(ok=True, output=f"{tool} done")


def action(n: int, tool: str = "desktop_move", *, device: str = DEVICE, key: str = "", **args):
    arguments = args or {"x": 10 * n, "y": 20}
    call_key = key or f"key{n}"
    seal = seal_action(
        device_key(APPROVAL_KEY, device), device_id=device, task_id="task1", call_key=call_key,
        tool=tool, arguments=arguments,
    )  # fmt: skip
    return {"type": "action", "id": f"a{n}", "task_id": "task1", "key": call_key, "tool": tool,
            "arguments": arguments, "seal": seal, "files": {}}  # fmt: skip


class Gateway:
    """A gateway's ``/ws/desktop`` that hands out scripted actions and keeps the answers."""

    def __init__(self, frames: list[dict], *, close_code: int | None = None) -> None:
        self.frames = frames
        self.close_code = close_code
        self.answers: list[dict] = []
        self.connections = 0
        self.hellos: list[dict] = []

    async def handler(self, socket) -> None:
        self.connections += 1
        self.hellos.append(json.loads(await socket.recv()))
        if self.close_code in (4401, 4403) and self.connections == 1:
            await socket.close(self.close_code, "revoked")
            return
        await socket.send(json.dumps({"type": "ready", "device_id": DEVICE, "name": "laptop"}))
        if self.close_code == 1011 and self.connections == 1:
            await socket.close(1011, "going away")
            return
        for frame in self.frames:
            await socket.send(json.dumps(frame))
            self.answers.append(json.loads(await socket.recv()))
        await socket.wait_closed()  # stays open until the agent goes


async def run_agent(gateway: Gateway, recorder: Recorder, tmp_path, *, until, kill=None) -> int:
    async with serve(gateway.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        pairing = Pairing(f"http://127.0.0.1:{port}", DEVICE, "laptop", "tok",
                          device_key(APPROVAL_KEY, DEVICE).hex())  # fmt: skip
        agent = Agent(pairing, recorder, Ledger(tmp_path / "done.jsonl"), say=lambda _: None,  # type: ignore[arg-type]
                      max_backoff_s=0.2)  # fmt: skip
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))

        async def watch() -> None:
            while not until():
                if kill is not None and kill():
                    agent.kill()  # as the hotkey's thread does
                await asyncio.sleep(0.02)
            stop.set()

        watching = asyncio.create_task(watch())
        try:
            return await asyncio.wait_for(running, scaled(15))
        finally:
            watching.cancel()


async def test_sealed_actions_run_and_forged_or_replayed_ones_do_not(tmp_path) -> None:
    good = action(1)
    changed = {**action(2), "arguments": {"x": 999, "y": 20}}
    elsewhere = action(3, device="e" * 32)
    unsealed = {**action(4), "seal": "00" * 32}
    other_tool = {**action(5), "tool": "desktop_type_text", "arguments": {"text": "rm -rf"}}
    frames = [good, changed, elsewhere, unsealed, other_tool, good]
    gateway = Gateway(frames)
    recorder = Recorder()
    code = await run_agent(gateway, recorder, tmp_path, until=lambda: len(gateway.answers) == 6)
    assert code == 0
    assert gateway.hellos[0]["token"] == "tok"
    assert recorder.done == [("desktop_move", {"x": 10, "y": 20})], "acted once, on the sealed one"
    outcomes = [a["outcome"] for a in gateway.answers]
    assert [a["id"] for a in gateway.answers] == ["a1", "a2", "a3", "a4", "a5", "a1"]
    assert outcomes[0] == outcomes[5] == {
        "ok": True, "output": "desktop_move done", "error": None, "needs_person": False
    }  # fmt: skip
    for refused in outcomes[1:5]:
        assert refused["ok"] is False
        assert "does not carry a valid approval for this PC" in refused["error"]


async def test_an_action_done_before_a_restart_is_not_done_again(tmp_path) -> None:
    first = Gateway([action(1)])
    recorder = Recorder()
    await run_agent(first, recorder, tmp_path, until=lambda: len(first.answers) == 1)
    again = Gateway([action(1)])  # given again after a dropped connection, to a new process
    await run_agent(again, recorder, tmp_path, until=lambda: len(again.answers) == 1)
    assert len(recorder.done) == 1
    assert again.answers[0]["outcome"] == first.answers[0]["outcome"]


async def test_the_kill_switch_fails_the_action_tells_the_task_and_stops(tmp_path) -> None:
    gateway = Gateway([action(1, "desktop_click", x=5, y=5), action(2)])
    recorder = Recorder(kill_on="desktop_click")
    code = await run_agent(gateway, recorder, tmp_path, until=lambda: False)
    assert code == EXIT_KILLED
    [answer] = gateway.answers
    assert answer["outcome"]["ok"] is False
    assert answer["outcome"]["needs_person"] is True
    assert "kill switch" in answer["outcome"]["error"]
    assert recorder.done == [], "nothing ran after the kill switch"


@pytest.mark.parametrize("code", [4401, 4403])
async def test_a_refused_pc_stops_instead_of_retrying(tmp_path, code) -> None:
    gateway = Gateway([], close_code=code)
    assert await run_agent(gateway, Recorder(), tmp_path, until=lambda: False) == EXIT_REVOKED
    assert gateway.connections == 1


async def test_a_dropped_connection_is_made_again(tmp_path) -> None:
    gateway = Gateway([action(1)], close_code=1011)
    recorder = Recorder()
    await run_agent(gateway, recorder, tmp_path, until=lambda: len(gateway.answers) == 1)
    assert gateway.connections == 2
    assert len(recorder.done) == 1


async def test_the_kill_switch_pressed_while_idle_stops_the_agent(tmp_path) -> None:
    gateway = Gateway([])
    code = await run_agent(
        gateway, Recorder(), tmp_path, until=lambda: False, kill=lambda: gateway.connections == 1
    )
    assert code == EXIT_KILLED
    assert gateway.connections == 1, "it did not connect again"
