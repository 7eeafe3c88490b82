"""Reading what a stream holds, for assertions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from troika_shared.messages import AnyMessage, decode

if TYPE_CHECKING:
    from troika_shared.bus import Bus
    from troika_shared.subjects import StreamKey

__all__ = ["stored"]


async def stored(bus: Bus, key: StreamKey) -> list[AnyMessage]:
    """Every message a stream holds now, in order (acknowledged work-queue messages are gone)."""
    name = bus.topology.stream_name(key)
    state = (await bus.js.stream_info(name)).state
    found: list[AnyMessage] = []
    if state.messages == 0:
        return found
    for seq in range(max(state.first_seq, 1), state.last_seq + 1):
        try:
            raw = await bus.js.get_msg(name, seq)
        except NotFoundError:
            continue
        if raw.data is not None:
            found.append(decode(raw.data))
    return found
