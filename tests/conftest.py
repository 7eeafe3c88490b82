"""Shared pieces of the end-to-end tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from troika_testkit.agents import llm_env
from troika_testkit.otlp import TraceReceiver
from troika_testkit.ports import free_port
from troika_testkit.processes import gateway_ready, stop_all

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class Journal:
    """The probe agents' journal: which replica started and finished which message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[tuple[str, str, str]]:
        if not self.path.exists():
            return []
        rows = [line.split() for line in self.path.read_text().splitlines() if line.strip()]
        return [(event, message_id, pid) for event, message_id, pid in rows]

    def of(self, event: str, message_id: str) -> list[str]:
        """The pids that logged ``event`` for the message."""
        return [pid for e, m, pid in self.entries() if e == event and m == message_id]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")


SERVICES = (
    ("troika_gateway.worker", "worker"),
    ("troika_planner", "planner"),
    ("troika_executor", "executor"),
    ("troika_reviewer", "reviewer"),
)


@dataclass
class Stack:
    url: str
    data_dir: object
    processes: dict
    spawn: object
    env: dict
    generation: int = 0
    own_env: dict = field(default_factory=dict)  # a service's own settings, by its name

    def start(self, name: str, module: str) -> None:
        self.generation += 1
        env = {**self.env, **self.own_env.get(name, {})}
        self.processes[name] = self.spawn(module, name=f"{name}-{self.generation}", **env)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop_all(self) -> None:
        stop_all(self.processes.values())

    def start_all(self) -> None:
        self.start("gateway", "troika_gateway")
        for module, name in SERVICES:
            self.start(name, module)


@pytest.fixture
def otlp() -> Iterator[TraceReceiver]:
    """An OTLP/HTTP receiver on a loopback port, keeping the spans the services export."""
    with TraceReceiver() as receiver:
        yield receiver


@pytest.fixture
def stack_env() -> dict[str, str]:
    """More settings for every process of the stack (a test module overrides this)."""
    return {}


@pytest.fixture
def service_env() -> dict[str, dict[str, str]]:
    """Settings of one process of the stack, by its name (``worker``): a test module overrides
    this."""
    return {}


@pytest.fixture
async def stack(spawn, tmp_path, redis_url, bus_prefix, scripted_llm, stack_env, service_env):
    port = free_port()
    common = {
        "TROIKA_SECRET_KEY": secrets.token_urlsafe(48),
        "TROIKA_DATA_DIR": str(tmp_path / "data"),
        "TROIKA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'troika.db'}",
        "TROIKA_REDIS_URL": redis_url,
        "TROIKA_REDIS_PREFIX": f"{bus_prefix}:",
        "TROIKA_GATEWAY_PORT": str(port),
        "TROIKA_PASSWORD_TIME_COST": "1",
        "TROIKA_PASSWORD_MEMORY_KIB": "8192",
        "TROIKA_ACK_WAIT_S": "5",
        **llm_env(scripted_llm),
        **stack_env,
    }
    stack = Stack(f"http://127.0.0.1:{port}", tmp_path / "data", {}, spawn, common,
                  own_env=service_env)  # fmt: skip
    stack.start("gateway", "troika_gateway")
    await gateway_ready(stack.url)
    for module, name in SERVICES:
        stack.start(name, module)
    return stack


# The end-to-end tests run whole stacks of processes (gateway, worker, three agents), and the
# browser tests `troika up` and Chromium or Firefox besides: each of them keeps the two cores of
# the development machine busy, so two side by side only make each other slower (on a busy day,
# past their time limits). Under `--dist loadgroup` they form one group, "stack" (the test kit's
# own browser tests join it), which one worker runs one test after another; pytest-xdist hands it
# out first, as the group with the most tests, and the other workers take the short tests beside
# it. The `troika up` tests and the benchmark, whole systems too, form a second group, "up", on
# another worker: added to this one, the longest, they would make the whole run about 5 minutes
# longer.
STACK = pytest.mark.xdist_group("stack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Puts the end-to-end and browser tests in the "stack" group (see above)."""
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(STACK)
