"""Helpers for agent tests: an LLM client on the scripted server, and ready-made answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from troika_shared.llm import LlmSettings
from troika_shared.openai_llm import OpenAICompatibleLLM

if TYPE_CHECKING:
    from troika_testkit.llm import ScriptedLLM

__all__ = ["llm_env", "llm_for", "plan_answer"]


def llm_for(server: ScriptedLLM, **overrides: Any) -> OpenAICompatibleLLM:  # noqa: ANN401
    """A real OpenAI-compatible client pointed at the scripted server."""
    settings = LlmSettings(
        llm_base_url=server.base_url,
        llm_api_key=SecretStr("test-key"),
        llm_model=overrides.pop("model", "gpt-4o-mini"),
        llm_max_retries=overrides.pop("max_retries", 0),
        llm_timeout_s=overrides.pop("timeout", 10),
        **overrides,
    )
    return OpenAICompatibleLLM(settings)


def llm_env(server: ScriptedLLM) -> dict[str, str]:
    """The ``TROIKA_LLM_*`` variables that point a service process at the scripted server."""
    return {
        "TROIKA_LLM_BASE_URL": server.base_url,
        "TROIKA_LLM_API_KEY": "test-key",
        "TROIKA_LLM_MODEL": "gpt-4o-mini",
        "TROIKA_LLM_MAX_RETRIES": "0",
    }


def plan_answer(
    *subtasks: tuple[str, list[str], list[str]], summary: str = "plan"
) -> dict[str, Any]:
    """A planner answer: ``(id, depends_on, tool_hints)`` per subtask."""
    return {
        "decision": "plan",
        "summary": summary,
        "subtasks": [
            {
                "id": sid,
                "title": f"Do {sid}",
                "description": f"Carry out {sid}.",
                "depends_on": deps,
                "priority": 3,
                "acceptance_criteria": [f"{sid} is done"],
                "tool_hints": hints,
            }
            for sid, deps, hints in subtasks
        ],
    }
