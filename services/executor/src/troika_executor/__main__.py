"""Runs the executor; start as many replicas as you like."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from troika_executor.files import TaskFiles
from troika_executor.handlers import StoppedTasks, build_router, sweep_browsers
from troika_executor.settings import ExecutorSettings
from troika_shared.openai_llm import OpenAICompatibleLLM
from troika_shared.runner import serve
from troika_shared.subjects import StreamKey

if TYPE_CHECKING:
    from troika_shared.bus import Bus


def main() -> None:
    """Consumes step requests and approved tool calls until SIGTERM or SIGINT."""
    settings = ExecutorSettings()
    llm = OpenAICompatibleLLM(settings)
    stopped = StoppedTasks()
    toolbox = settings.toolbox(images=llm.sees_images)
    files = TaskFiles(settings)
    sweeping: set[asyncio.Task[None]] = set()
    quit_sweeping = asyncio.Event()

    async def start(bus: Bus) -> None:
        await stopped.bind(bus)
        await files.open()
        if toolbox.browsers is not None:
            sweeping.add(
                asyncio.create_task(sweep_browsers(toolbox.browsers, stopped, quit_sweeping))
            )
        if toolbox.sandbox is not None:
            # Settled now, with logging set up: the log says at once whether run_python is
            # isolated, only weakly ("basic", a warning), or refused (an error with the reason).
            await asyncio.to_thread(toolbox.sandbox.check)

    async def stop() -> None:
        quit_sweeping.set()
        await asyncio.gather(*sweeping, return_exceptions=True)
        if toolbox.browsers is not None:
            await toolbox.browsers.close()
        await llm.close()
        await files.close()

    serve(
        service="executor",
        distribution="troika-executor",
        settings=settings,
        router=build_router(
            llm,
            toolbox,
            settings.seal_key(),
            stopped,
            secrets_key=settings.secrets_key(),
            files=files,
        ),
        on_start=start,
        on_stop=stop,
        stream=StreamKey.EXECUTOR,
    )


if __name__ == "__main__":
    main()
