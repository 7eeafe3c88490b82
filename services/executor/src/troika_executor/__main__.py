"""Runs the executor; start as many replicas as you like."""

from __future__ import annotations

from troika_executor.handlers import StoppedTasks, build_router
from troika_executor.settings import ExecutorSettings
from troika_shared.llm import OpenAICompatibleLLM
from troika_shared.runner import serve
from troika_shared.subjects import StreamKey


def main() -> None:
    """Consumes step requests and approved tool calls until SIGTERM or SIGINT."""
    settings = ExecutorSettings()
    llm = OpenAICompatibleLLM(settings)
    stopped = StoppedTasks()
    serve(
        service="executor",
        distribution="troika-executor",
        settings=settings,
        router=build_router(
            llm,
            settings.toolbox(),
            settings.seal_key(),
            stopped,
            secrets_key=settings.secrets_key(),
        ),
        on_start=stopped.bind,
        on_stop=llm.close,
        stream=StreamKey.EXECUTOR,
    )


if __name__ == "__main__":
    main()
