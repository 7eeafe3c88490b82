"""The embedded NATS and Valkey: only a client with their credentials gets in."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from troika.embedded import EmbeddedNats, EmbeddedValkey
from troika_shared.bus import Bus
from troika_shared.errors import DependencyUnavailable
from troika_shared.messages import PlanProduced, PlanRequested, StepProposed, decode
from troika_shared.settings import BusSettings
from troika_shared.subjects import AGENTS, StreamKey, Topology
from troika_testkit import scaled


async def _quiet(_error: Exception) -> None:
    """The refusal is what the test expects: nothing to log."""


def _hidden_from_others(server: EmbeddedNats | EmbeddedValkey) -> None:
    """The password is in no command line (which any local user can read), and the
    configuration file that holds it is the owner's alone."""
    assert server.pid is not None
    assert server.password.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
    config = server.data_dir / f"{server.name}.conf"
    assert server.password in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


async def test_the_embedded_nats_lets_in_only_clients_with_its_credentials(tmp_path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    url = await asyncio.to_thread(server.start)
    try:
        _hidden_from_others(server)
        for stranger in (
            f"nats://127.0.0.1:{server.port}",
            f"nats://troika:not-the-password@127.0.0.1:{server.port}",
        ):
            refused = NatsClient()
            try:
                with pytest.raises(NatsError, match="Authorization Violation"):
                    await refused.connect(
                        stranger,
                        allow_reconnect=False,
                        connect_timeout=5,
                        max_reconnect_attempts=0,
                        error_cb=_quiet,
                    )
            finally:
                await refused.close()
        client = await nats.connect(url, connect_timeout=5)
        try:
            got = await client.subscribe("hello")
            await client.publish("hello", b"there")
            assert (await got.next_msg(timeout=5)).data == b"there"
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_embedded_valkey_lets_in_only_clients_with_its_password(tmp_path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey")
    url = await asyncio.to_thread(server.start, persist=False)
    try:
        _hidden_from_others(server)
        async with Redis(host="127.0.0.1", port=server.port) as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.flushall()
        async with Redis(host="127.0.0.1", port=server.port, password="guess") as guesser:
            with pytest.raises((AuthenticationError, ResponseError)):
                await guesser.ping()
        async with Redis.from_url(url) as client:
            await client.set("k", "v")
            assert await client.get("k") == b"v"
    finally:
        await asyncio.to_thread(server.stop)


async def test_each_agent_may_use_only_its_own_subjects(tmp_path) -> None:
    prefix = "perm"
    topology = Topology(prefix)
    users = {"troika": None} | {agent: topology.agent_permissions(agent) for agent in AGENTS}
    server = EmbeddedNats(tmp_path / "nats", users=users)
    await asyncio.to_thread(server.start)
    admin = planner = None
    try:
        admin = await Bus.connect(BusSettings(nats_url=server.url, bus_prefix=prefix), name="admin")
        await admin.ensure_streams()
        # A refused publish waits this long for the acknowledgement that never comes; an
        # allowed request (creating its streams) must have time on a busy machine.
        settings = BusSettings(
            nats_url=server.url_for("planner"), bus_prefix=prefix, publish_timeout_s=scaled(2)
        )
        planner = await Bus.connect(settings, name="planner@test", service="planner")
        # What it is there for: its streams, its queue, its answers.
        await planner.ensure_streams(update=False)
        queue = await planner.work_queue(StreamKey.PLANNER, "planner")
        await admin.publish(PlanRequested(correlation_id="t1", objective="notes"))
        [delivery] = await queue.fetch(1, timeout=5)
        await delivery.ack()
        request = decode(delivery.data)
        assert await planner.publish(PlanProduced(correlation_id="t1", request_id=request.id))
        # What it may not do: answer for the executor, give a command, read another queue.
        with pytest.raises(DependencyUnavailable):
            await planner.publish(StepProposed(correlation_id="t1", subtask_id="a"))
        with pytest.raises(DependencyUnavailable):
            await planner.publish(PlanRequested(correlation_id="t2", objective="more"))
        with pytest.raises(NatsTimeout):
            await planner.work_queue(StreamKey.EXECUTOR, "sneak")
        # ... nor listen to the people's live events.
        heard = await planner.nc.subscribe(topology.event_subject("u1"))
        await admin.nc.publish(topology.event_subject("u1", "t1"), b"private")
        with pytest.raises(NatsTimeout):
            await heard.next_msg(timeout=1)
    finally:
        for bus in (planner, admin):
            if bus is not None:
                await bus.close()
        await asyncio.to_thread(server.stop)
