"""The gateway's settings."""

from __future__ import annotations

from pydantic import Field

from troika_shared.settings import BusSettings


class GatewaySettings(BusSettings):
    """Everything the gateway reads from ``TROIKA_*`` variables.

    Attributes:
        gateway_host: The address the API listens on.
        gateway_port: The API's port.
        redis_url: Redis or Valkey, for scheduling and rate limits.
        ready_timeout_s: How long each readiness check may take.
    """

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    redis_url: str = "redis://127.0.0.1:6379/0"
    ready_timeout_s: float = Field(default=2.0, gt=0)
