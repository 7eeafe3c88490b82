"""The gateway application: ``create_app(settings) -> Litestar``."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import structlog
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusConfig
from redis.asyncio import Redis

from troika_gateway.auth.middleware import PUBLIC_PATHS, BearerAuthMiddleware
from troika_gateway.auth.passwords import Passwords
from troika_gateway.auth.ratelimit import LoginLimiter
from troika_gateway.auth.routes import AuthController
from troika_gateway.auth.tokens import TokenIssuer
from troika_gateway.credentials import CredentialController
from troika_gateway.db import create_engine, create_sessionmaker, upgrade
from troika_gateway.dependencies import dependencies
from troika_gateway.desktop.devices import DeviceController
from troika_gateway.desktop.link import desktop_link
from troika_gateway.headers import security_headers
from troika_gateway.health import HealthController
from troika_gateway.interactions.policy_routes import (
    AuditController,
    PolicyController,
    TaskPolicyController,
)
from troika_gateway.interactions.routes import InteractionController
from troika_gateway.live import live_events
from troika_gateway.metrics import MetricsController
from troika_gateway.openapi import EventBodies, openapi_config
from troika_gateway.pipeline.outbox import Publisher
from troika_gateway.pipeline.store import TaskStore
from troika_gateway.problems import exception_handlers
from troika_gateway.scheduling.jobs import Jobs
from troika_gateway.scheduling.routes import ScheduleController
from troika_gateway.scheduling.times import SystemClock
from troika_gateway.social.routes import SocialController, social_media
from troika_gateway.storage import open_files
from troika_gateway.tasks.routes import TaskController
from troika_shared import tracing
from troika_shared.bus import Bus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from litestar.plugins import PluginProtocol

    from troika_gateway.settings import GatewaySettings

    Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]

__all__ = ["create_app"]

log = structlog.get_logger("troika.gateway")


def _database(settings: GatewaySettings) -> Lifespan:
    """The lifespan that opens the database and the store of the tasks' files."""

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # on SQLite, writes on the loop; reads, whose size a request decides, on a thread
        engine = create_engine(
            settings.database_url,
            dead_client_s=settings.database_dead_client_s,
            statements_on_loop="writes",
        )
        closing = AsyncExitStack()
        try:
            app.state.files = await open_files(settings, settings.data_dir, closing)
            await upgrade(engine)
            app.state.engine = engine
            app.state.sessionmaker = create_sessionmaker(engine)
            yield
        finally:
            await engine.dispose()
            await closing.aclose()

    return database


def create_app(settings: GatewaySettings) -> Litestar:
    """Builds the gateway for ``settings``; clients are opened by its lifespan, not here.

    Raises:
        ValueError: ``TROIKA_SECRET_KEY`` is missing.
    """
    tokens = TokenIssuer(settings.require_secret_key(), settings.access_token_ttl_s)

    @asynccontextmanager
    async def bus(app: Litestar) -> AsyncIterator[None]:
        async with await Bus.connect(settings, name="gateway") as connection:
            await connection.ensure_streams()
            app.state.bus = connection
            publisher = Publisher(connection, app.state.sessionmaker)
            app.state.store = TaskStore(settings, publisher, files=app.state.files)
            stop = asyncio.Event()
            marking = asyncio.create_task(publisher.run(stop))
            try:
                yield
            finally:
                stop.set()
                await marking

    @asynccontextmanager
    async def redis(app: Litestar) -> AsyncIterator[None]:
        client: Redis = Redis.from_url(settings.redis_url, socket_timeout=settings.ready_timeout_s)
        app.state.redis = client
        app.state.clock = SystemClock()
        app.state.jobs = Jobs.connect(settings, app.state.clock)
        app.state.login_limiter = LoginLimiter(
            client,
            settings.redis_prefix,
            per_account=settings.login_attempts_per_account,
            per_address=settings.login_attempts_per_address,
            window_s=settings.login_window_s,
            max_delay_s=settings.login_slowdown_max_s,
        )
        try:
            yield
        finally:
            await app.state.jobs.close()
            await client.aclose()

    prometheus = PrometheusConfig(
        app_name="troika_gateway", prefix="troika_gateway", group_path=True
    )
    plugins: list[PluginProtocol] = [EventBodies()]
    if tracing.enabled():  # a server span per request: a new task's trace starts there
        plugins.append(
            OpenTelemetryPlugin(
                OpenTelemetryConfig(
                    exclude=["^/health$", "^/ready$", "^/metrics$"],
                    exclude_spans=["receive", "send"],
                    scopes={ScopeType.HTTP},  # a live feed is not one request
                )
            )
        )
    return Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            TaskController,
            InteractionController,
            PolicyController,
            TaskPolicyController,
            AuditController,
            CredentialController,
            DeviceController,
            ScheduleController,
            SocialController,
            social_media,
            live_events,
            desktop_link,
            MetricsController,
        ],
        lifespan=[_database(settings), bus, redis],
        state=State(
            {
                "settings": settings,
                "tokens": tokens,
                "passwords": Passwords(
                    PasswordHasher(
                        time_cost=settings.password_time_cost,
                        memory_cost=settings.password_memory_kib,
                    )
                ),
            }
        ),
        dependencies=dependencies(),
        middleware=[
            prometheus.middleware,
            DefineMiddleware(BearerAuthMiddleware, exclude=PUBLIC_PATHS),
        ],
        exception_handlers=exception_handlers(),
        before_send=[security_headers],
        openapi_config=openapi_config(),
        plugins=plugins,
        request_max_body_size=settings.max_upload_bytes + (1 << 20),
        debug=False,
        logging_config=None,  # structlog, configured by the process, renders every line
    )
