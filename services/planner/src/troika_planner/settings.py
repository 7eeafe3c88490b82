"""The planner's settings."""

from __future__ import annotations

from troika_shared.llm import LlmSettings
from troika_shared.settings import AgentSettings


class PlannerSettings(AgentSettings, LlmSettings):
    """Everything the planner reads from ``TROIKA_*`` variables: the bus and the model."""
