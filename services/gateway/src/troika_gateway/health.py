"""Liveness and readiness: ``/health`` answers while the process runs, ``/ready`` only when every
server the gateway depends on answers too."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text

if TYPE_CHECKING:
    from collections.abc import Awaitable

CheckState = Literal["ok", "failing"]


class Health(msgspec.Struct, frozen=True):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(msgspec.Struct, frozen=True):
    """Whether every dependency answered, and each one's state."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckState]
    errors: dict[str, str] = msgspec.field(default_factory=dict)


async def _check(probe: Awaitable[object], timeout: float) -> str | None:
    try:
        await asyncio.wait_for(probe, timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
        return repr(exc)
    return None


async def _database(state: State) -> None:
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


class HealthController(Controller):
    """Probes for supervisors, load balancers and ``troika up --check``."""

    tags = ["health"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/health", summary="Liveness", cache=False)
    async def health(self) -> Health:
        """Answers as long as the process serves requests."""
        return Health()

    @get("/ready", summary="Readiness (database, NATS, Redis)", cache=False)
    async def ready(self, state: State) -> Response[Readiness]:
        """200 when the database, NATS and Redis answer; 503 naming what failed otherwise."""
        timeout: float = state.settings.ready_timeout_s
        names = ("database", "nats", "redis")
        results = await asyncio.gather(
            _check(_database(state), timeout),
            _check(state.bus.nc.flush(timeout=timeout), timeout),
            _check(state.redis.ping(), timeout),
        )
        errors = {name: error for name, error in zip(names, results, strict=True) if error}
        checks: dict[str, CheckState] = {n: "failing" if n in errors else "ok" for n in names}
        ready = not errors
        return Response(
            Readiness(status="ready" if ready else "not_ready", checks=checks, errors=errors),
            status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
        )
