"""The pytest plugin: fixtures for real servers, a bus per test, and service processes.

Registered through the ``pytest11`` entry point, so every test in the workspace has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from troika_shared.bus import Bus
from troika_shared.settings import AgentSettings
from troika_shared.tracing import configure_tracing
from troika_testkit import pace
from troika_testkit.browser import VIEWPORT, Screenshots, launch, new_context
from troika_testkit.llm import ScriptedLLM
from troika_testkit.mail import MailServer
from troika_testkit.processes import ServiceProcess, stop_all
from troika_testkit.s3 import S3Server
from troika_testkit.servers import Servers
from troika_testkit.social import Platforms

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
    from pathlib import Path

    from opentelemetry.sdk.trace import ReadableSpan
    from playwright.async_api import Browser, Page

__all__ = [
    "agent_settings",
    "browser",
    "browser_name",
    "bus",
    "bus_env",
    "bus_prefix",
    "chromium",
    "mail_server",
    "nats_url",
    "page",
    "platforms",
    "postgres_url",
    "redis_url",
    "s3_server",
    "screenshots",
    "scripted_llm",
    "slowness",
    "spans",
    "spawn",
    "troika_servers",
]

_MEASURED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Measures the machine's slowness once, in the process that starts the run, unless
    ``TROIKA_TEST_SLOWNESS`` sets it; pytest-xdist's workers, started later, inherit the
    variable and read the same factor (see :mod:`troika_testkit.pace`)."""
    if hasattr(config, "workerinput"):
        return
    try:
        config.stash[_MEASURED] = pace.configured() is None
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if config.stash[_MEASURED]:
        os.environ[pace.ENV] = f"{pace.measure():.2f}"


def pytest_report_header(config: pytest.Config) -> str:
    how = "measured" if config.stash.get(_MEASURED, False) else f"set by {pace.ENV}"
    return (
        f"machine slowness: {pace.slowness():.2f} ({how}; 1 is a quiet machine): "
        "the tests' waits and time limits are multiplied by it"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Gives ``--dist loadgroup`` its groups back, in pytest-xdist's worker processes.

    pytest-xdist (3.8) tells its scheduler a test's ``xdist_group`` by appending ``@<group>`` to
    the test's node id, through the attribute older pytest built node ids from; pytest 9.2 builds
    them from a structured id instead, so the suffix was lost and every test was scheduled on its
    own, grouped or not, without a word (reported to pytest-xdist as #1386). This puts the suffix
    where pytest 9.2 reads it, after pytest-xdist's own hook; it leaves alone a node id that has
    the suffix already (an older pytest, a fixed pytest-xdist).
    """
    if not getattr(config.option, "loadgroup", False):  # set in the workers of a loadgroup run
        return
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = f"@{'_'.join(groups)}"
        if groups and not item.nodeid.endswith(suffix):
            from _pytest.nodeid import NodeId  # noqa: PLC0415 - pytest 9.2's, only needed there

            item._id = NodeId.parse(item.nodeid + suffix)  # noqa: SLF001 - see the docstring


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(
    item: pytest.Item,
    settings: Any,  # noqa: ANN401 - pytest-timeout's Settings, a tuple it does not type
) -> object:
    """pytest-timeout's limit for the test (its marker, else the configured default), times
    the machine's slowness; the timer itself is pytest-timeout's."""
    import pytest_timeout  # noqa: PLC0415 - present whenever this hook is called

    longer = settings._replace(timeout=pace.scaled(settings.timeout))
    return pytest_timeout.pytest_timeout_set_timer(item=item, settings=longer)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the test item, so fixtures can tell a failure at teardown."""
    report = yield
    setattr(item, f"troika_report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def troika_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """This run's NATS, Redis and (when there is one) PostgreSQL."""
    servers = Servers.start(tmp_path_factory.mktemp("servers"))
    try:
        yield servers
    finally:
        asyncio.run(servers.drop_databases())
        servers.stop()


@pytest.fixture(scope="session")
def nats_url(troika_servers: Servers) -> str:
    """A NATS server with JetStream."""
    return troika_servers.nats_url


@pytest.fixture(scope="session")
def redis_url(troika_servers: Servers) -> str:
    """A Redis (or Valkey) server; keys should start with ``troika_servers.redis_prefix``."""
    return troika_servers.redis_url


@pytest.fixture(scope="session")
def postgres_url(troika_servers: Servers) -> str:
    """A PostgreSQL database of this run's own (skips the test where no PostgreSQL answers)."""
    if troika_servers.postgres_admin_url is None:
        pytest.skip("no PostgreSQL server answers (CI always has one)")
    return asyncio.run(troika_servers.create_database())


@pytest.fixture(scope="session")
def slowness() -> float:
    """How many times longer than on a quiet machine the tests wait (see
    :mod:`troika_testkit.pace`); ``troika_testkit.pace.scaled(seconds)`` applies it."""
    return pace.slowness()


@pytest.fixture
def bus_prefix() -> str:
    """A bus prefix of this test's own: its streams, subjects and service names are private."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bus_env(nats_url: str, bus_prefix: str) -> dict[str, str]:
    """The ``TROIKA_*`` variables that point a service process at this test's bus."""
    return {"TROIKA_NATS_URL": nats_url, "TROIKA_BUS_PREFIX": bus_prefix}


@pytest.fixture
def agent_settings(nats_url: str, bus_prefix: str) -> AgentSettings:
    """Agent settings on this test's bus, with short timings so redeliveries come quickly (and
    JetStream's answers given as long as a busy machine needs)."""
    return AgentSettings(
        nats_url=nats_url,
        bus_prefix=bus_prefix,
        publish_timeout_s=pace.scaled(5.0),
        ack_wait_s=2.0,
        max_deliver=3,
        retry_backoff_s=0.1,
        retry_backoff_max_s=0.5,
        shutdown_grace_s=5.0,
    )


@pytest.fixture
async def bus(agent_settings: AgentSettings) -> AsyncIterator[Bus]:
    """A connected bus with this test's streams created; they are deleted afterwards."""
    connection = await Bus.connect(agent_settings, name="test")
    await connection.ensure_streams()
    try:
        yield connection
    finally:
        await connection.delete_streams()
        await connection.close()


@pytest.fixture
def spawn(
    request: pytest.FixtureRequest, tmp_path: Path, bus_env: dict[str, str]
) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts services as real processes on this test's bus; stops them after the test.

    Call it as ``spawn("troika_planner", name="planner-1", TROIKA_X="...")``; ``within`` is a
    command it runs under (a network namespace: ``["ip", "netns", "exec", "host1"]``). When the
    test fails, each process's output is printed, so it shows in the report.
    """
    started: list[ServiceProcess] = []

    def start(
        module: str, *, name: str | None = None, within: Sequence[str] = (), **env: str
    ) -> ServiceProcess:
        label = name or f"{module}-{len(started) + 1}"
        process = ServiceProcess(
            module, {**bus_env, **env}, tmp_path / "logs", label, within
        ).start()
        started.append(process)
        return process

    yield start
    stop_all(started)
    report = getattr(request.node, "troika_report_call", None)
    if report is not None and report.failed:
        for process in started:
            print(f"----- {process.name} (pid {process.pid}) -----\n{process.output()}")  # noqa: T201


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A scripted OpenAI-compatible server on a loopback port (see :class:`ScriptedLLM`)."""
    with ScriptedLLM() as llm:
        yield llm


class _Collecting(SimpleSpanProcessor):
    """Exports ended spans only while a test collects them."""

    on = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            super().on_end(span)


_MEMORY: list[tuple[InMemorySpanExporter, _Collecting]] = []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this process ends during the test, in memory (tracing is turned on for the
    process the first time; spans of other tests are not kept)."""
    if not _MEMORY:
        exporter = InMemorySpanExporter()
        processor = _Collecting(exporter)
        configure_tracing("tests", None, processor=processor)
        _MEMORY.append((exporter, processor))
    exporter, processor = _MEMORY[0]
    exporter.clear()
    processor.on = True
    try:
        yield exporter
    finally:
        processor.on = False
        exporter.clear()


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """A real SMTP server on a loopback port that signs in ``alice`` / ``mail-pass-7`` and
    keeps what it receives (see :class:`MailServer`)."""
    with MailServer(username="alice", password="mail-pass-7") as server:  # noqa: S106 - a test account
        yield server


# The browser is started per test: pytest-asyncio gives each test its own event loop, and
# Playwright's objects belong to the loop that made them, so a browser kept for the session
# could only be used by tests marked to run in a session-wide loop (and fails confusingly in the
# others). A launch takes well under a second.
@pytest.fixture
def browser_name() -> str:
    """The browser the ``browser`` and ``page`` fixtures start: Chromium, unless a test
    parametrizes ``browser_name`` (``@pytest.mark.parametrize("browser_name", BROWSERS)``)."""
    return "chromium"


@contextlib.asynccontextmanager
async def _launched(name: str) -> AsyncIterator[Browser]:
    # Imported here: Playwright is a dependency of the workspace's dev group, and the other
    # fixtures need not wait for it to load.
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415

    # expect(...)'s own default, 5 s on a quiet machine, scaled as every other wait
    expect.set_options(timeout=pace.scaled(5_000))
    async with async_playwright() as playwright:
        started = await launch(playwright, name)
        try:
            yield started
        finally:
            await started.close()


@pytest.fixture
async def browser(browser_name: str) -> AsyncIterator[Browser]:
    """The system's browser called ``browser_name``, headless (see
    :mod:`troika_testkit.browser`)."""
    async with _launched(browser_name) as started:
        yield started


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """The system's Chromium, headless, whatever ``browser_name`` says."""
    async with _launched("chromium") as started:
        yield started


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """This test's screenshots: ``await screenshots.shot(page, "label")`` saves the whole page as
    ``var/screenshots/<test name>/<NN>-<label>.png``."""
    return Screenshots.for_test(request.config.rootpath, request.node.name)


@pytest.fixture
async def page(
    request: pytest.FixtureRequest, browser: Browser, screenshots: Screenshots
) -> AsyncIterator[Page]:
    """A page of ``browser`` in a fresh context (1280x900, downloads accepted, waits scaled to the
    machine's slowness); when the test fails, the page as it was is saved as its last
    screenshot, ``NN-failure.png``."""
    from playwright.async_api import Error as PlaywrightError  # noqa: PLC0415 - see _launched

    context = await new_context(browser, viewport=VIEWPORT, accept_downloads=True)
    try:
        tab = await context.new_page()
        yield tab
        report = getattr(request.node, "troika_report_call", None)
        if report is not None and report.failed:
            with contextlib.suppress(PlaywrightError):
                await screenshots.shot(tab, "failure")
    finally:
        await context.close()


@pytest.fixture
def platforms() -> Iterator[Platforms]:
    """Loopback stand-ins for X, Instagram, Facebook and LinkedIn (see :class:`Platforms`)."""
    with Platforms() as stand_ins:
        yield stand_ins


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3-compatible server (moto's server mode) on a loopback port, for the session."""
    with S3Server() as server:
        yield server
