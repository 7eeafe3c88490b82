"""Settings base classes: every service has one frozen settings class built from these.

Settings are read from ``TROIKA_*`` environment variables once, in a service's ``__main__`` (or
``create_app``), and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from troika_shared.subjects import PREFIX_PATTERN

__all__ = ["AgentSettings", "BusSettings", "LogFormat", "TroikaSettings", "shown"]

LogFormat = Literal["auto", "console", "json"]


def shown(url: str) -> str:
    """``url`` as it may be printed or logged: a password in it (``scheme://user:password@…``)
    is replaced with ``***``; a list of servers separated by commas, each."""
    if "," in url:
        return ",".join(shown(part.strip()) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class TroikaSettings(BaseSettings):
    """What every Troika process reads: the ``TROIKA_`` prefix and logging.

    Attributes:
        log_level: The lowest level logged (``debug``, ``info``, ``warning``, ``error``).
        log_format: ``console`` (coloured, for people), ``json`` (for log collectors) or
            ``auto`` (console on a terminal, JSON otherwise).
        otel_endpoint: An OpenTelemetry collector's OTLP/HTTP address
            (``http://collector:4318``): traces are exported there. Off when unset (the
            standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns it on too).
    """

    model_config = SettingsConfigDict(
        env_prefix="TROIKA_", frozen=True, extra="ignore", populate_by_name=True
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: LogFormat = "auto"
    otel_endpoint: str | None = None


class BusSettings(TroikaSettings):
    """Where the message bus is, and how to talk to it.

    Attributes:
        nats_url: The NATS server (JetStream enabled); several may be given, comma-separated.
        bus_prefix: The first token of every subject, stream and service name.
        connect_timeout_s: How long one connection attempt may take.
        connect_attempts: Attempts per server at start before giving up (once connected, a lost
            connection is retried forever).
        publish_timeout_s: How long to wait for JetStream to confirm a publish.
        duplicate_window_s: How long JetStream remembers message ids to drop re-publishes.
    """

    nats_url: str = "nats://127.0.0.1:4222"
    bus_prefix: str = "troika"
    connect_timeout_s: int = Field(default=5, ge=1)
    connect_attempts: int = Field(default=5, ge=1)
    publish_timeout_s: float = Field(default=5.0, gt=0)
    duplicate_window_s: float = Field(default=120.0, gt=0)

    @field_validator("bus_prefix")
    @classmethod
    def _prefix_is_one_token(cls, value: str) -> str:
        if not PREFIX_PATTERN.fullmatch(value):
            raise ValueError("use 1-32 letters, digits, '_' or '-', starting with a letter")
        return value

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs as a list."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]


class AgentSettings(BusSettings):
    """How an agent service consumes its work queue.

    Attributes:
        concurrency: Messages one replica handles at once.
        ack_wait_s: How long a message may go without an acknowledgement or heartbeat before
            JetStream gives it to another replica.
        max_deliver: Deliveries of one message before it is dead-lettered.
        retry_backoff_s: The first redelivery delay after a failure; it doubles each time.
        retry_backoff_max_s: The longest redelivery delay.
        shutdown_grace_s: How long a stopping replica lets in-flight messages finish.
        metrics_port: Where the service serves its Prometheus metrics (none: not served).
        metrics_host: The address they are served on: this machine only unless opened.
    """

    concurrency: int = Field(default=8, ge=1, le=1024)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    ack_wait_s: float = Field(default=30.0, ge=1)
    max_deliver: int = Field(default=5, ge=1)
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    shutdown_grace_s: float = Field(default=20.0, ge=0)
