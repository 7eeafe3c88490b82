"""One stack measured: started as ``troika up`` starts it, driven through the workload's
phases, read through ``/proc``, stopped.

The phases, in the order a stack runs those it is given (after warm-up tasks, two for each
process of an agent service):

``sequential``
    Tasks one at a time; each one's time outside the LLM per agent answer.
``batch``
    Tasks submitted together; the throughput, then each process's memory high-water mark.
``stream``
    Tasks kept a fixed number in flight; the throughput, and the CPU time every process of the
    stack spent meanwhile.
``pending``
    Tasks left waiting for an approval; the gateway's and the worker's memory before and after.
``profile``
    The stream again, where its Python processes spend their CPU sampled meanwhile
    (``make profile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from troika.settings import UpSettings
from troika.stack import Stack
from troika_testkit.agents import llm_env
from troika_testkit.ports import free_port
from troika_testkit.procfs import cpu_ms, peak_rss_mb, rss_mb
from troika_testkit.sampling import environment, sampled
from troika_testkit.workload import AGENT_ANSWERS, LogSink, Person, Phase, scripted_llm

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection

    from troika_testkit.llm import ScriptedLLM

__all__ = ["ALL_PHASES", "Run", "Workload", "fresh_database", "measure", "percentile"]

ALL_PHASES = ("sequential", "batch", "stream", "pending")  # and "profile", asked for alone
_HOLDING_MEMORY = ("gateway", "worker")  # the processes that keep state per waiting task
_TOKEN_TTL_S = 24 * 3600  # one sign-in lasts the whole run, however slow the machine


@dataclass(frozen=True)
class Workload:
    """How much of each phase to run.

    Attributes:
        tasks: Tasks in the batch, submitted together.
        sequential: Tasks run one at a time.
        conc_tasks: Tasks in the stream.
        concurrency: Tasks the stream keeps in flight.
        pending: Tasks left waiting for an approval.
        timeout: Seconds each phase may take.
        profile_dir: Where the ``profile`` phase writes its samples.
        profile_rate: Samples per second of CPU time each process uses.
    """

    tasks: int = 50
    sequential: int = 20
    conc_tasks: int = 100
    concurrency: int = 20
    pending: int = 1000
    timeout: float = 600
    profile_dir: Path = Path("var/profile")
    profile_rate: int = 100


@dataclass
class Run:
    """What one stack measured.

    Attributes:
        replicas: Processes per agent service.
        database: ``sqlite`` or ``postgres``.
        batch: The tasks submitted together.
        stream: The tasks kept in flight.
        sequential: Task ids of the one-at-a-time phase.
        seq_overhead_ms: Per task of that phase, its time outside the LLM per agent answer.
        answers_per_task: Per task of that phase, its LLM requests.
        cpu_ms: CPU time each process spent during the stream.
        rss_before_mb: Resident memory before the pending tasks were submitted.
        rss_after_mb: The same once each of them waits.
        database_cpu_ms: CPU time the PostgreSQL server's processes serving the stack spent
            during the stream (``None`` on SQLite, whose work is the services' own).
        waiting: Pending tasks that wait for an approval.
        approvals: Approvals answered.
        prompt_tokens: Per task of the batch, the prompt tokens the system counted.
        answers: The worker's ``answer.applied`` log records.
        peak_rss_mb: Each process's memory high-water mark after the batch.
        restarts: The services that crashed and were restarted, with how often.
        unfinished: Tasks that stopped without completing, with why.
        profiles: The ``profile`` phase's samples, a file per Python process.
    """

    replicas: int
    database: str
    batch: Phase | None = None
    stream: Phase | None = None
    sequential: set[str] = field(default_factory=set)
    seq_overhead_ms: list[float] = field(default_factory=list)
    answers_per_task: list[int] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    rss_before_mb: dict[str, float] = field(default_factory=dict)
    rss_after_mb: dict[str, float] = field(default_factory=dict)
    database_cpu_ms: float | None = None
    waiting: int = 0
    approvals: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    unfinished: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Path] = field(default_factory=dict)

    @property
    def loaded(self) -> frozenset[str]:
        """Task ids of the batch."""
        return self.batch.ids if self.batch else frozenset()

    def samples(
        self,
        field_name: str,
        tasks: Collection[str],
        kinds: tuple[str, ...] = AGENT_ANSWERS,
    ) -> list[float]:
        """A measurement of the ``answer.applied`` lines of ``tasks``' answers of ``kinds``."""
        return [
            float(record[field_name])
            for record in self.answers
            if record.get("task_id") in tasks and record.get("type") in kinds
        ]

    def p50_by_answer(self, field_name: str) -> dict[str, float]:
        """The median of a measurement per answer type, batch phase."""
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


def _services(stack: Stack) -> dict[str, int]:
    """The stack's services (its Python processes), by name."""
    assert stack.supervisor is not None  # noqa: S101 - started first
    children = stack.supervisor.children
    return {child.spec.name: child.pid for child in children if child.pid is not None}


def _pids(stack: Stack) -> dict[str, int]:
    """The stack's processes: every service, and the embedded servers it started."""
    pids = _services(stack)
    for server in (stack.nats_server, stack.valkey_server):
        if server is not None and server.pid is not None:
            pids[server.name] = server.pid
    return pids


async def _sequential(person: Person, llm: ScriptedLLM, count: int, run: Run) -> None:
    for _ in range(count):
        task_id, started, ending = await person.one()
        run.sequential.add(task_id)
        served = llm.served_between(started, ending.at)
        if ending.status != "completed" or not served:
            continue
        inside = sum(request.seconds for request in served)
        run.seq_overhead_ms.append((ending.at - started - inside) / len(served) * 1000)
        run.answers_per_task.append(len(served))


async def _backends(database_url: str) -> dict[str, int]:
    """The PostgreSQL server processes that serve the stack's connections to its database."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", "", 1), timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return {str(row["pid"]): int(row["pid"]) for row in rows}


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU time spent per process; one that ended meanwhile counts as spending none."""
    return {name: max(0.0, ms - before.get(name, 0.0)) for name, ms in after.items()}


async def _stream(
    person: Person, stack: Stack, workload: Workload, run: Run, database_url: str | None
) -> None:
    pids = _pids(stack)
    backends = await _backends(database_url) if database_url else {}
    before, before_backends = cpu_ms(pids), cpu_ms(backends)
    run.stream = await person.stream(workload.conc_tasks, workload.concurrency)
    run.cpu_ms = _spent(before, cpu_ms(pids))
    if database_url:
        # connections opened during the phase count from zero; those closed in it are lost
        backends |= await _backends(database_url)
        run.database_cpu_ms = sum(_spent(before_backends, cpu_ms(backends)).values())


async def _pending(person: Person, stack: Stack, count: int, run: Run) -> None:
    pids = {name: pid for name, pid in _pids(stack).items() if name in _HOLDING_MEMORY}
    run.rss_before_mb = {name: rss_mb(pid) for name, pid in pids.items()}
    run.waiting = len(await person.pending(count))
    run.rss_after_mb = {name: rss_mb(pid) for name, pid in pids.items()}


async def measure(
    workload: Workload,
    *,
    replicas: int = 1,
    phases: tuple[str, ...] = ALL_PHASES,
    database_url: str | None = None,
    echo: bool = False,
) -> Run:
    """Runs ``phases`` of the workload on a fresh stack and returns what it measured.

    ``database_url`` replaces ``TROIKA_DATABASE_URL`` for the stack's services.
    """
    url = database_url or os.environ.get("TROIKA_DATABASE_URL", "")
    run = Run(replicas=replicas, database="postgres" if url.startswith("postgres") else "sqlite")
    data_dir = Path(tempfile.mkdtemp(prefix="troika-bench-"))
    sink = LogSink(echo=echo)
    env = {"TROIKA_ACCESS_TOKEN_TTL_S": str(_TOKEN_TTL_S)}
    if database_url:
        env["TROIKA_DATABASE_URL"] = database_url
    if "profile" in phases:
        env |= environment(workload.profile_dir, rate=workload.profile_rate)
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
        stack = Stack(settings, sink, env=llm_env(llm) | env)
        try:
            _say(f"{run.database}, {replicas} per agent: starting")
            await stack.start()
            await stack.wait_ready(settings.ready_timeout_s)
            async with Person(stack.gateway_url, workload.timeout) as person:
                # Warm-up, for every replica: first connections, imports, prepared statements.
                # Tasks submitted together are spread over a service's replicas (each has a
                # pull request waiting), so a stack of two is not measured on one cold process.
                await asyncio.gather(*(person.one() for _ in range(2 * replicas)))
                await _phases(
                    person, stack, llm, workload=workload, phases=phases, run=run, url=database_url
                )
                run.approvals, run.unfinished = person.approvals, person.unfinished
            assert stack.supervisor is not None  # noqa: S101 - started above
            run.restarts = {
                c.spec.name: c.restarts for c in stack.supervisor.children if c.restarts
            }
        finally:
            await stack.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    run.answers = sink.answers
    return run


async def _phases(
    person: Person,
    stack: Stack,
    llm: ScriptedLLM,
    *,
    workload: Workload,
    phases: tuple[str, ...],
    run: Run,
    url: str | None,
) -> None:
    for phase in phases:
        _say(f"{run.database}, {run.replicas} per agent: {phase}")
        if phase == "sequential":
            await _sequential(person, llm, workload.sequential, run)
        elif phase == "batch":
            run.batch = await person.batch(workload.tasks)
            # read before the phases after it, so the figure keeps its meaning
            run.peak_rss_mb = {
                name: round(peak_rss_mb(pid), 1) for name, pid in _services(stack).items()
            }
            run.prompt_tokens = [await person.prompt_tokens(t) for t in sorted(run.batch.ids)]
        elif phase == "stream":
            await _stream(person, stack, workload, run, url)
        elif phase == "pending":
            await _pending(person, stack, workload.pending, run)
        elif phase == "profile":
            async with sampled(_services(stack), workload.profile_dir) as run.profiles:
                await _stream(person, stack, workload, run, url)


def _say(text: str) -> None:
    """Progress, for whoever watches a run that takes minutes (stdout is the JSON's)."""
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} bench: {text}\n")


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """A new PostgreSQL database for the run; yields its SQLAlchemy URL, drops it afterwards.

    Raises:
        OSError: No PostgreSQL answers at ``admin_url`` (or it refused; then a
            ``asyncpg.PostgresError``).
    """
    name = f"troika_bench_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    server = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{server}/{name}"
    finally:
        connection = await asyncpg.connect(admin_url, timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
