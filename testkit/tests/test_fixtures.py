"""The test kit's servers: real, private to the run, and the machine's own under CI."""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from troika_testkit.servers import CI_NATS_URL, CI_REDIS_URL, Servers, in_ci


def test_ci_runs_against_the_machines_own_servers(troika_servers: Servers) -> None:
    if not in_ci():
        pytest.skip("only CI=true uses the machine's servers")
    assert troika_servers.nats_url == CI_NATS_URL
    assert troika_servers.redis_url == CI_REDIS_URL
    assert troika_servers.postgres_admin_url is not None


@pytest.mark.postgres
async def test_postgres_gives_the_run_a_database_of_its_own(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url, timeout=5)
    try:
        name = await connection.fetchval("SELECT current_database()")
        await connection.execute("CREATE TABLE probe (n integer)")
        await connection.execute("INSERT INTO probe VALUES (41), (1)")
        total = await connection.fetchval("SELECT sum(n) FROM probe")
    finally:
        await connection.close()
    assert name.startswith("troika_test_")
    assert total == 42


async def test_redis_answers_and_the_run_has_its_own_key_prefix(
    redis_url: str, troika_servers: Servers
) -> None:
    key = f"{troika_servers.redis_prefix}probe"
    async with Redis.from_url(redis_url) as redis:
        await redis.set(key, "42", ex=60)
        assert await redis.get(key) == b"42"
        await redis.delete(key)
    assert troika_servers.redis_prefix.startswith("t")
