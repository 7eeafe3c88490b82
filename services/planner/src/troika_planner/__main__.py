"""Runs the planner; start as many replicas as you like."""

from __future__ import annotations

from troika_planner.handlers import build_router
from troika_planner.settings import PlannerSettings
from troika_shared.openai_llm import OpenAICompatibleLLM
from troika_shared.runner import serve
from troika_shared.subjects import StreamKey


def main() -> None:
    """Consumes plan requests until SIGTERM or SIGINT."""
    settings = PlannerSettings()
    llm = OpenAICompatibleLLM(settings)
    serve(
        service="planner",
        distribution="troika-planner",
        settings=settings,
        router=build_router(llm, settings.most_subtasks),
        on_stop=llm.close,
        stream=StreamKey.PLANNER,
    )


if __name__ == "__main__":
    main()
