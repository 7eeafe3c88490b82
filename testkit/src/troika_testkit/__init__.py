"""Troika's test kit: pytest fixtures that give tests real servers, and helpers to run services.

Under ``CI=true`` the fixtures use the machine's own servers (NATS 127.0.0.1:4222, Redis
127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 database ``test``) and fail loudly if one is missing.
Elsewhere they start embedded ones (NATS, Valkey) and skip only the PostgreSQL tests when no
PostgreSQL answers. Each test gets its own bus prefix (so its own streams), each run its own
Redis key prefix and its own PostgreSQL database.
"""

from troika_testkit.processes import ServiceProcess, wait_for
from troika_testkit.servers import Servers

__all__ = ["Servers", "ServiceProcess", "wait_for"]
