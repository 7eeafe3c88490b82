"""A probe agent on the real service runner, for tests of the runner and the bus themselves.

It answers each ``PlanRequested`` with a ``PlanProduced`` whose summary names the replica that
handled it, after ``TROIKA_PROBE_DELAY_S`` seconds, and appends ``start``/``done`` lines to the
journal file ``TROIKA_PROBE_JOURNAL``, so a test can count exactly how often each message was
handled and by whom. Run it as ``python -m troika_testkit.probe``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from troika_shared.messages import Message, Plan, PlanProduced, PlanRequested, derive_id
from troika_shared.router import Router
from troika_shared.runner import serve
from troika_shared.settings import AgentSettings
from troika_shared.subjects import StreamKey


class ProbeSettings(AgentSettings):
    """The runner's settings plus the probe's delay and journal."""

    probe_delay_s: float = 0.0
    probe_journal: Path | None = None


def build_router(settings: ProbeSettings) -> Router:
    """The probe's one route."""
    router = Router("probe")
    instance = str(os.getpid())

    def journal(event: str, message: Message) -> None:
        if settings.probe_journal is not None:
            with settings.probe_journal.open("a") as file:
                file.write(f"{event} {message.id} {instance}\n")

    @router.route(PlanRequested)
    async def answer(message: PlanRequested) -> list[Message]:
        journal("start", message)
        await asyncio.sleep(settings.probe_delay_s)
        journal("done", message)
        reply = PlanProduced(
            id=derive_id(message.id, "plan.produced"),
            correlation_id=message.correlation_id,
            request_id=message.id,
            plan=Plan(summary=f"handled by {instance}"),
        )
        return [reply]

    return router


def main() -> None:
    """Consumes the planner's stream as the ``probe`` consumer until SIGTERM."""
    settings = ProbeSettings()
    serve(
        service="probe",
        distribution="troika-testkit",
        settings=settings,
        router=build_router(settings),
        stream=StreamKey.PLANNER,
    )


if __name__ == "__main__":
    main()
