"""Desktop actions on the bus: each PC's queue, its control messages, and answering for it.

Approved actions wait in the ``DESKTOP`` work queue, one subject per PC, until the gateway
process that holds that PC's connection takes them (one durable consumer per PC, so an action
waits there while the PC is offline, and goes to whichever process the PC connects to next).
Control messages (core NATS) reach the process holding a PC's connection wherever it is: the PC
was revoked, or connected again elsewhere.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import msgspec
import structlog
from nats.js.errors import NotFoundError

from troika_shared.messages import DesktopAction, DesktopResult, ToolOutcome, decode, derive_id
from troika_shared.subjects import StreamKey

if TYPE_CHECKING:
    from troika_shared.bus import Bus, WorkQueue

__all__ = ["ACK_WAIT_S", "Control", "answer", "device_queue", "fail_waiting", "send_control"]

log = structlog.get_logger("troika.gateway.desktop")


class Control(msgspec.Struct, frozen=True):
    """A control message for the process holding a PC's connection."""

    type: str  # "revoked" | "connected"
    connection: str = ""


ACK_WAIT_S = 30.0
"""How long an action handed to a connection may go without news before the bus gives it out
again (the connection says ``in_progress`` while its PC works)."""


def _durable(device_id: str) -> str:
    return f"desktop-{device_id}"


async def device_queue(bus: Bus, user_id: str, device_id: str) -> WorkQueue:
    """Binds to the PC's queue of actions (creating it the first time)."""
    return await bus.work_queue(
        StreamKey.DESKTOP,
        _durable(device_id),
        ack_wait_s=ACK_WAIT_S,
        max_deliver=-1,  # an action waits for its PC however often a connection drops
        max_ack_pending=1,  # one action at a time, in order
        filter_subject=bus.topology.desktop_subject(user_id, device_id),
    )


async def send_control(
    bus: Bus, user_id: str, device_id: str, kind: str, connection: str = ""
) -> None:
    """Tells the process holding the PC's connection, wherever it is."""
    subject = bus.topology.device_control_subject(user_id, device_id)
    await bus.nc.publish(subject, msgspec.json.encode(Control(kind, connection)))
    await bus.nc.flush()


async def answer(bus: Bus, action: DesktopAction, outcome: ToolOutcome) -> None:
    """Publishes the outcome of an action for its task (once: the id is derived from the
    action's, so a second answer to the same action is dropped by the bus)."""
    await bus.publish(
        DesktopResult(
            id=derive_id(action.id, "desktop.result"),
            correlation_id=action.correlation_id,
            user_id=action.user_id,
            subtask_id=action.subtask_id,
            device_id=action.device_id,
            key=action.call.key,
            outcome=outcome,
            requested_at=action.occurred_at,
        )
    )


async def fail_waiting(bus: Bus, user_id: str, device_id: str, reason: str) -> int:
    """Fails every action still waiting for a PC that was revoked, and removes its queue;
    returns how many there were."""
    queue = await device_queue(bus, user_id, device_id)
    failed = 0
    try:
        while deliveries := await queue.fetch(1, timeout=0.5):
            for delivery in deliveries:
                with contextlib.suppress(msgspec.DecodeError):
                    action = decode(delivery.data)
                    if isinstance(action, DesktopAction):
                        await answer(bus, action, ToolOutcome(ok=False, error=reason))
                        failed += 1
                await delivery.ack()
    finally:
        await queue.close()
        with contextlib.suppress(NotFoundError):
            await bus.js.delete_consumer(queue.spec.name, queue.durable)
    log.info("desktop.revoked", device_id=device_id, failed=failed)
    return failed
