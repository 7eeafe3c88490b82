"""The gateway application: ``create_app(settings) -> Litestar``."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import metadata
from typing import TYPE_CHECKING

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from redis.asyncio import Redis

from troika_gateway.health import HealthController
from troika_shared.bus import Bus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from troika_gateway.settings import GatewaySettings

log = structlog.get_logger("troika.gateway")


def create_app(settings: GatewaySettings) -> Litestar:
    """Builds the gateway for ``settings``; clients are opened by its lifespan, not here."""

    @asynccontextmanager
    async def bus_lifespan(app: Litestar) -> AsyncIterator[None]:
        async with await Bus.connect(settings, name="gateway") as bus:
            await bus.ensure_streams()
            app.state.bus = bus
            yield

    @asynccontextmanager
    async def redis_lifespan(app: Litestar) -> AsyncIterator[None]:
        redis: Redis = Redis.from_url(settings.redis_url, socket_timeout=settings.ready_timeout_s)
        app.state.redis = redis
        try:
            yield
        finally:
            await redis.aclose()

    return Litestar(
        route_handlers=[HealthController],
        lifespan=[bus_lifespan, redis_lifespan],
        state=State({"settings": settings}),
        openapi_config=OpenAPIConfig(
            title="Troika",
            version=metadata.version("troika-gateway"),
            description="The public API of Troika, a multi-agent task assistant.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        debug=False,
        logging_config=None,  # structlog, configured by the process, renders every line
    )
