"""The executor's settings."""

from __future__ import annotations

from troika_shared.settings import AgentSettings


class ExecutorSettings(AgentSettings):
    """Everything the executor reads from ``TROIKA_*`` variables: the bus and its work queue."""
