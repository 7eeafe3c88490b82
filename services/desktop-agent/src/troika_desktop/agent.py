"""The connection to the gateway: dial out, take approved actions one at a time, answer.

The agent keeps one outbound WebSocket to the gateway's ``/ws/desktop`` (so the PC needs no open
port and works behind NAT), reconnecting with growing pauses while the gateway is away, and says
in the terminal what it is doing. Before acting it checks the action's seal (approved for this
PC, with exactly these arguments) and its own ledger (an action it already did is answered from
there, never done twice); it keeps to a pace of so many actions a minute. The kill switch
(Ctrl+Alt+Escape, or the mouse moved into a corner of the screen) fails the action in hand,
tells its task, and stops the agent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from troika_desktop.actions import KillSwitch, Outcome
from troika_desktop.seal import verify

if TYPE_CHECKING:
    from collections.abc import Callable

    from websockets.asyncio.client import ClientConnection

    from troika_desktop.actions import Actions
    from troika_desktop.ledger import Ledger
    from troika_desktop.pairing import Pairing

__all__ = ["EXIT_KILLED", "EXIT_REVOKED", "Agent"]

VERSION = "troika-desktop 0.1"
EXIT_REVOKED = 2
EXIT_KILLED = 4
_REVOKED = {4401, 4403}
_REPLACED = 4409
_MAX_MESSAGE = 32 << 20


class _Stop(Exception):
    """Ends the agent with an exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Agent:
    """This PC's agent.

    Args:
        pairing: This PC as the gateway knows it.
        actions: The desktop tools within the person's limits.
        ledger: What this PC has done.
        per_minute: The most actions begun in any minute.
        say: Where the agent's state lines go (the terminal).
        max_backoff_s: The longest pause between attempts to connect.
    """

    def __init__(
        self,
        pairing: Pairing,
        actions: Actions,
        ledger: Ledger,
        *,
        per_minute: int = 30,
        say: Callable[[str], None] = print,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.pairing = pairing
        self.actions = actions
        self.ledger = ledger
        self.per_minute = per_minute
        self.say = say
        self.max_backoff_s = max_backoff_s
        self._begun: deque[float] = deque()
        base = pairing.gateway.removeprefix("http")
        self.url = f"ws{base}/ws/desktop"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._killed = asyncio.Event()

    def kill(self) -> None:
        """The kill switch (from any thread): stop taking actions, and stop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._killed.set)

    async def run(self, stop: asyncio.Event) -> int:
        """Stays connected until ``stop`` is set (0), the PC is revoked (2) or the kill switch
        is used (4)."""
        delay = 1.0
        self._loop = asyncio.get_running_loop()
        sweeping = asyncio.create_task(self._sweep_shots())
        try:
            while not stop.is_set():
                if self._killed.is_set():
                    self.say("kill switch: stopped. Run troika-desktop again to take actions.")
                    return EXIT_KILLED
                try:
                    await self._session(stop)
                    delay = 1.0
                except _Stop as exc:
                    return exc.code
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else None
                    if code in _REVOKED:
                        self.say(
                            f"the gateway refused this PC: {exc.rcvd.reason if exc.rcvd else ''}"
                        )
                        return EXIT_REVOKED
                    if code == _REPLACED:
                        self.say("this PC connected again from another troika-desktop; stopping")
                        return 0
                    self.say(f"the connection dropped ({code}); reconnecting")
                except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                    self.say(
                        f"offline: {self.pairing.gateway} is not reachable "
                        f"({type(exc).__name__}); retrying in {delay:.0f} s"
                    )
                if stop.is_set():
                    break
                if self._killed.is_set():
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay * random.uniform(0.8, 1.2))  # noqa: S311
                delay = min(delay * 2, self.max_backoff_s)
            return 0
        finally:
            sweeping.cancel()

    async def _session(self, stop: asyncio.Event) -> None:
        async with websockets.connect(
            self.url, open_timeout=10, max_size=_MAX_MESSAGE, ping_interval=20
        ) as socket:
            hello = {
                "type": "hello",
                "token": self.pairing.token,
                "agent": VERSION,
                "platform": "linux-x11",
            }
            await socket.send(json.dumps(hello))
            first = json.loads(await socket.recv())
            if first.get("type") != "ready":
                self.say(f"the gateway refused this PC: {first.get('detail', first)}")
                raise _Stop(EXIT_REVOKED)
            self.say(
                f"connected to {self.pairing.gateway} as {self.pairing.name!r}; waiting for actions"
            )
            closing = asyncio.create_task(stop.wait())
            killing = asyncio.create_task(self._killed.wait())
            try:
                while True:
                    receiving = asyncio.create_task(socket.recv())
                    done, _ = await asyncio.wait(
                        {receiving, closing, killing}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if receiving not in done:  # stopped, or the kill switch while idle
                        receiving.cancel()
                        await socket.close()
                        return
                    frame = json.loads(receiving.result())
                    if frame.get("type") == "action":
                        await self._act(socket, frame)
                    elif frame.get("type") == "error":
                        self.say(f"the gateway says: {frame.get('detail')}")
            finally:
                closing.cancel()
                killing.cancel()

    async def _act(self, socket: ClientConnection, frame: dict[str, Any]) -> None:
        tool, key, task_id = (
            str(frame.get("tool")),
            str(frame.get("key")),
            str(frame.get("task_id")),
        )
        arguments = frame.get("arguments") or {}
        sealed = isinstance(arguments, dict) and verify(
            self.pairing.key,
            str(frame.get("seal", "")),
            device_id=self.pairing.device_id,
            task_id=task_id,
            call_key=key,
            tool=tool,
            arguments=arguments,
        )
        if not sealed:
            self.say(f"refused {tool}: it does not carry a valid approval for this PC")
            refused = Outcome(
                ok=False,
                error="refused at the PC: the action does not carry a valid approval for this PC",
            )
            await self._answer(socket, frame, refused.as_dict())
            return
        kept = self.ledger.get(key)
        if kept is not None:
            self.say(f"{tool} was done already; answering what it did then")
            await self._answer(socket, frame, kept)
            return
        await self._pace()
        self.say(f"→ {tool} (task {task_id[:8]})")
        killed = False
        try:
            outcome = await asyncio.to_thread(
                self.actions.run, task_id, tool, arguments, frame.get("files") or {}
            )
        except KillSwitch:
            killed = True
            outcome = Outcome(
                ok=False,
                error="stopped at the PC with the kill switch; troika-desktop has stopped",
                needs_person=True,
            )
        self.ledger.put(key, outcome.as_dict())
        said = outcome.output if outcome.ok else outcome.error
        self.say(f"  {'done' if outcome.ok else 'failed'}: {said}")
        answer = outcome.as_dict()
        if outcome.image is not None and frame.get("image"):  # the model will look at it
            answer["image"] = base64.b64encode(outcome.image).decode()
        await self._answer(socket, frame, answer)
        if killed:
            self._killed.set()  # the session ends; run() says so and stops

    async def _answer(
        self, socket: ClientConnection, frame: dict[str, Any], outcome: dict[str, Any]
    ) -> None:
        await socket.send(json.dumps({"type": "result", "id": frame.get("id"), "outcome": outcome}))

    async def _pace(self) -> None:
        """Waits until fewer than ``per_minute`` actions began in the last minute."""
        while True:
            now = time.monotonic()
            while self._begun and now - self._begun[0] >= 60:
                self._begun.popleft()
            if len(self._begun) < self.per_minute:
                self._begun.append(now)
                return
            wait = 60 - (now - self._begun[0])
            self.say(f"pacing: {self.per_minute} actions a minute at most; waiting {wait:.0f} s")
            await asyncio.sleep(wait)

    async def _sweep_shots(self) -> None:
        while True:
            await asyncio.sleep(30)
            await asyncio.to_thread(self.actions.shots.sweep)
