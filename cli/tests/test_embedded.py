"""The embedded NATS and Valkey: only a client with their credentials gets in."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from troika.embedded import EmbeddedNats, EmbeddedValkey


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
