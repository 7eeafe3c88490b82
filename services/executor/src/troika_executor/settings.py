"""The executor's settings."""

from __future__ import annotations

from pathlib import Path

from troika_shared.llm import LlmSettings
from troika_shared.settings import AgentSettings


class ExecutorSettings(AgentSettings, LlmSettings):
    """Everything the executor reads from ``TROIKA_*`` variables.

    Attributes:
        data_dir: The data directory it shares with the gateway (task folders live under it).
    """

    data_dir: Path = Path("var")
