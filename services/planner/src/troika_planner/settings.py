"""The planner's settings."""

from __future__ import annotations

from troika_shared.settings import AgentSettings


class PlannerSettings(AgentSettings):
    """Everything the planner reads from ``TROIKA_*`` variables: the bus and its work queue."""
