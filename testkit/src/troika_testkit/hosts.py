"""Hosts on one machine for the multi-host tests: Linux network namespaces on a bridge.

Each host is a network namespace with an address of its own on a private /24 and nothing else
(its loopback is its own); this machine's side of the bridge (``.254``) is where the shared
servers are reached. Services run on a host through ``ip netns exec``, and cutting a host off
takes its link down: its connections neither answer nor close, as when a machine loses its
network. The shared servers run on a host of their own (:mod:`troika_testkit.host_servers`);
a server in the test's own process (the scripted model) is reached through :class:`Relay`,
which forwards a port on the bridge to it.

Making namespaces needs root and ``iproute2`` (CI runs as root and installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

__all__ = ["Network", "Relay", "can_make_hosts"]


def can_make_hosts() -> str | None:
    """Why hosts cannot be made here (``None``: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "no `ip` command: apt-get install iproute2 (CI installs it)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Network:
    """Hosts (network namespaces) on a bridge of their own; a context manager that removes
    them all."""

    names: tuple[str, ...]
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: str = field(default_factory=lambda: f"10.{secrets.randbelow(50) + 200}."
                        f"{secrets.randbelow(256)}")  # fmt: skip
    made: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"tk{self.tag}"

    @property
    def here(self) -> str:
        """This machine's address on the bridge, where the hosts reach shared servers."""
        return f"{self.subnet}.254"

    def namespace(self, name: str) -> str:
        return f"troika-{self.tag}-{name}"

    def address(self, name: str) -> str:
        """The host's address."""
        return f"{self.subnet}.{self.names.index(name) + 1}"

    def _link(self, name: str) -> str:
        return f"tk{self.tag}h{self.names.index(name)}"

    def on(self, name: str) -> list[str]:
        """The command prefix that runs a program on the host."""
        return ["ip", "netns", "exec", self.namespace(name)]

    def __enter__(self) -> Network:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self.made.append(f"link:{self.bridge}")
            _ip("addr", "add", f"{self.here}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for name in self.names:
                self._add(name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _add(self, name: str) -> None:
        namespace, outside = self.namespace(name), self._link(name)
        inside = f"{outside}n"
        _ip("netns", "add", namespace)
        self.made.append(f"netns:{namespace}")
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        for args in (
            ("link", "set", "lo", "up"),
            ("link", "set", inside, "name", "eth0"),
            ("addr", "add", f"{self.address(name)}/24", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
        ):
            _ip("-n", namespace, *args)

    def cut(self, name: str) -> None:
        """Takes the host's link down: nothing goes in or out, and nothing is closed."""
        _ip("link", "set", self._link(name), "down")

    def __exit__(self, *_exc: object) -> None:
        for made in reversed(self.made):
            kind, _, what = made.partition(":")
            with contextlib.suppress(subprocess.CalledProcessError):
                if kind == "netns":
                    _ip("netns", "del", what)  # its end of the pair goes with it
                else:
                    _ip("link", "del", what)
        self.made.clear()


class Relay:
    """Forwards TCP connections from ``host``'s ports to servers on this machine, byte for byte.

    Started inside the test's event loop; :meth:`forward` returns the port that now reaches a
    server.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.servers: list[asyncio.Server] = []
        self.pipes: set[asyncio.Task[None]] = set()

    async def forward(self, target_host: str, target_port: int) -> int:
        """A port on ``host`` that reaches ``target_host:target_port``."""

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    target_host, target_port
                )
            except OSError:
                writer.close()
                return
            both = (self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
            for pipe in both:
                task = asyncio.create_task(pipe)
                self.pipes.add(task)
                task.add_done_callback(self.pipes.discard)

        server = await asyncio.start_server(connected, self.host, 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        """Stops listening and drops every connection."""
        for server in self.servers:
            server.close()
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
