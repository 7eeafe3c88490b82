"""Troika's test kit: pytest fixtures that give tests real servers, and helpers to run services.

Under ``CI=true`` the fixtures use the machine's own servers (NATS 127.0.0.1:4222, Redis
127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 database ``test``) and fail loudly if one is missing.
Elsewhere they start embedded ones (NATS, Valkey) and skip only the PostgreSQL tests when no
PostgreSQL answers. Each test gets its own bus prefix (so its own streams), each run its own
Redis key prefix and its own PostgreSQL database.

Every wait is what a quiet machine needs, multiplied by the machine's slowness, measured once
per run or set with ``TROIKA_TEST_SLOWNESS`` (see :mod:`troika_testkit.pace`).
"""

from troika_testkit.pace import scaled, slowness
from troika_testkit.processes import ServiceProcess, wait_for
from troika_testkit.servers import Servers

__all__ = ["Servers", "ServiceProcess", "scaled", "slowness", "wait_for"]
