"""The planner's settings."""

from __future__ import annotations

from pydantic import Field

from troika_planner.planning import MAX_SUBTASKS
from troika_shared.llm import LlmSettings
from troika_shared.settings import AgentSettings


class PlannerSettings(AgentSettings, LlmSettings):
    """Everything the planner reads from ``TROIKA_*`` variables: the bus and the model.

    Attributes:
        plan_max_subtasks: The most subtasks a plan may have. Unset: 12, or 1 with the
            embedded local model, which cannot break an objective down (it carries out a
            one-step objective whole).
    """

    plan_max_subtasks: int | None = Field(default=None, ge=1, le=MAX_SUBTASKS)

    @property
    def most_subtasks(self) -> int:
        """The most subtasks a plan may have."""
        if self.plan_max_subtasks is not None:
            return self.plan_max_subtasks
        return 1 if self.llm_provider == "local" else MAX_SUBTASKS
