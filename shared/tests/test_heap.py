"""A service's startup objects leave the garbage collector's full passes once it is ready."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

from troika_shared.runner import settle_when_ready


async def test_what_starting_made_is_set_aside_once_every_runner_takes_messages() -> None:
    gc.unfreeze()
    runner, dead_letters = (SimpleNamespace(ready=asyncio.Event()) for _ in range(2))
    try:
        settling = asyncio.create_task(settle_when_ready(runner, dead_letters))  # type: ignore[arg-type]
        runner.ready.set()
        await asyncio.sleep(0.05)
        assert not settling.done()  # the worker's second runner is still starting
        assert gc.get_freeze_count() == 0
        dead_letters.ready.set()
        await asyncio.wait_for(settling, 30)
        # every module, class and client of this process is out of the full passes' way
        assert gc.get_freeze_count() > 10_000
        assert gc.isenabled()  # what is made later is collected as before, automatically
    finally:
        gc.unfreeze()
