"""Where the real servers for a test run are: the CI machine's, or embedded ones started here."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg

from troika.embedded import EmbeddedNats, EmbeddedValkey
from troika_testkit.pace import scaled

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MissingServer", "Servers", "in_ci"]

CI_NATS_URL = "nats://127.0.0.1:4222"
CI_REDIS_URL = "redis://127.0.0.1:6379/0"
CI_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class MissingServer(RuntimeError):
    """A server that CI must have is not answering."""


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    with (
        contextlib.suppress(OSError),
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1),
    ):
        return True
    return False


@dataclass
class Servers:
    """The servers of one test run.

    Attributes:
        nats_url: NATS with JetStream.
        redis_url: Redis or Valkey.
        redis_prefix: A key prefix unique to this run.
        postgres_admin_url: A PostgreSQL database to create test databases from, if any.
    """

    nats_url: str
    redis_url: str
    redis_prefix: str
    postgres_admin_url: str | None
    _embedded: list[EmbeddedNats | EmbeddedValkey] = field(default_factory=list)
    _databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path) -> Servers:
        """Finds (under CI) or starts (elsewhere) the servers.

        Raises:
            MissingServer: Under CI, a server the machine must run does not answer.
        """
        run = uuid.uuid4().hex[:8]
        if in_ci():
            for name, url, port in (
                ("NATS", CI_NATS_URL, 4222),
                ("Redis", CI_REDIS_URL, 6379),
                ("PostgreSQL", CI_POSTGRES_URL, 5432),
            ):
                if not _answers(url, port):
                    raise MissingServer(f"CI=true but {name} does not answer at {url}")
            return cls(CI_NATS_URL, CI_REDIS_URL, f"t{run}:", CI_POSTGRES_URL)
        embedded: list[EmbeddedNats | EmbeddedValkey] = []
        nats_server = EmbeddedNats(workdir / "nats")
        valkey = EmbeddedValkey(workdir / "valkey")
        try:
            nats_url = nats_server.start(scaled(15))
            embedded.append(nats_server)
            redis_url = valkey.start(scaled(15), persist=False)
            embedded.append(valkey)
        except BaseException:
            for server in embedded:
                server.stop()
            raise
        postgres = os.environ.get("TROIKA_TEST_POSTGRES_URL") or CI_POSTGRES_URL
        return cls(
            nats_url,
            redis_url,
            f"t{run}:",
            postgres if _answers(postgres, 5432) else None,
            embedded,
        )

    async def create_database(self) -> str:
        """Creates a PostgreSQL database for this run and returns its URL (asyncpg form)."""
        if self.postgres_admin_url is None:
            raise MissingServer("no PostgreSQL server answers")
        name = f"troika_test_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(self.postgres_admin_url, timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self._databases.append(name)
        base = self.postgres_admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    async def drop_databases(self) -> None:
        """Drops the databases this run created."""
        if not self._databases or self.postgres_admin_url is None:
            return
        connection = await asyncpg.connect(self.postgres_admin_url, timeout=5)
        try:
            for name in self._databases:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
        self._databases.clear()

    def stop(self) -> None:
        """Stops the embedded servers this run started."""
        for server in reversed(self._embedded):
            server.stop()
        self._embedded.clear()
