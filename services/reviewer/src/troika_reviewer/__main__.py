"""Runs the reviewer; start as many replicas as you like."""

from __future__ import annotations

from troika_reviewer.handlers import build_router
from troika_reviewer.settings import ReviewerSettings
from troika_shared.openai_llm import OpenAICompatibleLLM
from troika_shared.runner import serve
from troika_shared.subjects import StreamKey


def main() -> None:
    """Consumes review requests until SIGTERM or SIGINT."""
    settings = ReviewerSettings()
    llm = OpenAICompatibleLLM(settings)
    serve(
        service="reviewer",
        distribution="troika-reviewer",
        settings=settings,
        router=build_router(llm),
        on_stop=llm.close,
        stream=StreamKey.REVIEWER,
    )


if __name__ == "__main__":
    main()
