"""The worker's and the API's periodic sweeps: run one every so often until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["every"]

log = structlog.get_logger("troika.gateway.sweeps")


async def every(
    interval_s: float, sweep: Callable[[], Awaitable[object]], stop: asyncio.Event, *, name: str
) -> None:
    """Runs ``sweep`` each ``interval_s`` seconds (the first after one interval) until ``stop``
    is set; a sweep that fails is logged (``sweep.failed``, with its name) and tried again next
    time."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        if stop.is_set():
            return
        try:
            await sweep()
        except Exception:  # the next sweep tries again
            log.exception("sweep.failed", sweep=name)
