"""The gateway's worker process: the orchestrator, the outbox relay, approval expiry, the
watchdog, the desktop actions' waits and the scheduler (an arq worker).

Run as many as you like (``python -m troika_gateway.worker``): they share the orchestrator's
durable consumer, and the version column settles any race between them.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from importlib import metadata

import pydantic
import structlog

from troika_gateway.db import create_engine, create_sessionmaker, upgrade
from troika_gateway.desktop.dispatch import DesktopWaits
from troika_gateway.desktop.shots import ShotArea
from troika_gateway.pipeline.expiry import Expirer
from troika_gateway.pipeline.orchestrator import Orchestrator
from troika_gateway.pipeline.outbox import Publisher, Relay
from troika_gateway.pipeline.store import TaskStore
from troika_gateway.pipeline.watchdog import Watchdog
from troika_gateway.scheduling.jobs import Jobs
from troika_gateway.scheduling.runner import Scheduler
from troika_gateway.scheduling.times import SystemClock
from troika_gateway.settings import GatewaySettings
from troika_gateway.social.renewals import Renewals
from troika_gateway.storage import open_files
from troika_shared import tracing
from troika_shared.bus import Bus
from troika_shared.errors import DependencyUnavailable
from troika_shared.logs import configure_logging
from troika_shared.metrics import serve_metrics
from troika_shared.private import keep_private
from troika_shared.runner import ServiceRunner, instance_name, settle_when_ready
from troika_shared.settings import AgentSettings
from troika_shared.subjects import StreamKey

__all__ = ["WorkerSettings", "main", "run_worker"]

log = structlog.get_logger("troika.worker")
EXIT_CONFIG = 2


class WorkerSettings(GatewaySettings, AgentSettings):
    """The gateway's settings plus how the orchestrator consumes the agents' answers."""


async def run_worker(settings: WorkerSettings, stop: asyncio.Event) -> None:
    """Runs the orchestrator and the relay until ``stop`` is set."""
    # every change is retried on a lost connection (see TaskStore.change): no ping per change
    gone_s = settings.database_dead_client_s
    # the worker's statements are all small and keyed: on SQLite they run on its event loop
    engine = create_engine(
        settings.database_url, pre_ping=False, dead_client_s=gone_s, statements_on_loop="all"
    )
    try:
        await upgrade(engine)
        sessionmaker = create_sessionmaker(engine)
        async with (
            AsyncExitStack() as stack,
            await Bus.connect(settings, name="gateway-worker") as bus,
        ):
            files = await open_files(settings, settings.data_dir, stack)
            await bus.ensure_streams()
            # SQLite takes one writer at a time: this process's writers queue for it in turn.
            writes = asyncio.Lock() if engine.dialect.name == "sqlite" else None
            relay = Relay(sessionmaker, bus, settings.relay_interval_s, writes)
            publisher = Publisher(bus, sessionmaker, writes)
            store = TaskStore(settings, publisher, writes, files)
            orchestrator = Orchestrator(sessionmaker, store)
            runner = ServiceRunner(
                service="orchestrator",
                version=metadata.version("troika-gateway"),
                settings=settings,
                router=orchestrator.router(),
                stream=StreamKey.RESULTS,
            )
            dead_letters = ServiceRunner(
                service="dead-letters",
                version=metadata.version("troika-gateway"),
                settings=settings,
                router=orchestrator.dead_letter_router(),
                stream=StreamKey.DEAD,
            )
            expirer = Expirer(sessionmaker, settings, store)
            watchdog = Watchdog(sessionmaker, settings, store)
            desktop_waits = DesktopWaits(sessionmaker, settings, store)
            renewals = Renewals(sessionmaker, settings)
            shots = ShotArea(files, settings.data_dir / "staging")
            clock = SystemClock()
            jobs = Jobs.connect(settings, clock)
            scheduler = Scheduler(sessionmaker, settings, store, jobs, clock, writes)
            try:
                await asyncio.gather(
                    runner.run(stop), dead_letters.run(stop), relay.run(stop),
                    publisher.run(stop), expirer.run(stop), watchdog.run(stop),
                    desktop_waits.run(stop), scheduler.run(stop), renewals.run(stop),
                    shots.run(sessionmaker, stop), settle_when_ready(runner, dead_letters),
                )  # fmt: skip
            finally:
                await jobs.close()
    finally:
        await engine.dispose()


def main() -> None:
    """Runs until SIGTERM or SIGINT."""
    try:
        settings = WorkerSettings()
    except pydantic.ValidationError as exc:
        raise SystemExit(f"troika worker: the configuration is not usable:\n{exc}") from exc
    configure_logging(service="worker", level=settings.log_level, fmt=settings.log_format)
    keep_private(settings.data_dir)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    stop_tracing = tracing.configure_tracing(
        "worker", tracing.endpoint_from(settings.otel_endpoint), instance=instance_name()
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop)

    try:
        asyncio.run(serve())
    except DependencyUnavailable as exc:
        log.error("worker.unavailable", dependency=exc.dependency, error=str(exc))  # noqa: TRY400
        raise SystemExit(3) from exc
    finally:
        stop_tracing()


if __name__ == "__main__":
    main()
