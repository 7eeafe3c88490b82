"""The deferred jobs in Redis that fire schedules, through arq.

A job carries only the schedule's id and the fire time it is for, serialised with msgspec (never
pickle). Its id is derived from both, so the same firing is queued once however many gateway
processes or workers ask for it; the database settles the rest (see :mod:`.service`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from troika_shared.tracing import carrier

if TYPE_CHECKING:
    from datetime import datetime

    from troika_gateway.scheduling.times import Clock
    from troika_gateway.settings import GatewaySettings

__all__ = ["FIRE", "Jobs", "decode", "encode", "job_id", "queue_name"]

FIRE = "fire_schedule"

log = structlog.get_logger("troika.schedules")


def encode(value: Any) -> bytes:  # noqa: ANN401 - arq's serializer signature
    """arq's job serialiser: MessagePack through msgspec."""
    return msgspec.msgpack.encode(value)


def decode(data: bytes) -> Any:  # noqa: ANN401 - arq's deserializer signature
    """arq's job deserialiser."""
    return msgspec.msgpack.decode(data)


def queue_name(settings: GatewaySettings) -> str:
    """The arq queue of this deployment (its Redis prefix keeps deployments apart)."""
    return f"{settings.redis_prefix}schedules"


def job_id(schedule_id: str, due: datetime) -> str:
    """The one job that fires ``schedule_id`` at ``due``."""
    return f"troika-schedule:{schedule_id}:{int(due.timestamp() * 1000)}"


class Jobs:
    """Queues and withdraws the jobs that fire schedules.

    Args:
        redis: An arq connection with msgspec serialisation.
        queue: The queue's name.
        clock: The schedules' clock (a deferral is the wall time until the fire time on it).
    """

    def __init__(self, redis: ArqRedis, queue: str, clock: Clock) -> None:
        self.redis = redis
        self.queue = queue
        self.clock = clock

    @classmethod
    def connect(cls, settings: GatewaySettings, clock: Clock) -> Jobs:
        """A client of the deployment's Redis (it connects on first use)."""
        redis = ArqRedis(
            ConnectionPool.from_url(settings.redis_url, socket_timeout=settings.ready_timeout_s),
            job_serializer=encode,
            job_deserializer=decode,
            default_queue_name=queue_name(settings),
        )
        return cls(redis, queue_name(settings), clock)

    async def plan(self, schedule_id: str, due: datetime) -> bool:
        """Queues the job that fires the schedule at ``due``; ``False`` when it is queued already
        (or ran moments ago), or Redis cannot be reached (the worker's reconciliation queues it
        once it can: the database is what counts)."""
        delay = max(0.0, self.clock.seconds_until(due))
        try:
            job = await self.redis.enqueue_job(
                FIRE,
                schedule_id,
                due.isoformat(),
                trace=carrier(),  # the run's trace links to what scheduled it
                _job_id=job_id(schedule_id, due),
                _defer_by=delay,
            )
        except (RedisError, OSError) as exc:
            log.warning("schedule.queue_failed", schedule_id=schedule_id, error=str(exc))
            return False
        return job is not None

    async def withdraw(self, schedule_id: str, due: datetime) -> None:
        """Removes the job that would fire the schedule at ``due`` (nothing if there is none; a
        job that cannot be removed finds its schedule stopped and does nothing)."""
        ident = job_id(schedule_id, due)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.queue, ident)
                pipe.delete(job_key_prefix + ident)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("schedule.withdraw_failed", schedule_id=schedule_id, error=str(exc))

    async def queued(self) -> list[str]:
        """The ids of the jobs waiting in the queue."""
        return [i.decode() for i in await self.redis.zrange(self.queue, 0, -1)]

    async def close(self) -> None:
        """Closes the connection."""
        await self.redis.aclose(close_connection_pool=True)
