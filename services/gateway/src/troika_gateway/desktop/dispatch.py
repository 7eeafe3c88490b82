"""The worker's side of desktop actions: an approved desktop call becomes an action sealed for
one of the person's PCs; an action that waited too long for an offline PC pauses its task.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
import structlog
from sqlalchemy import select

from troika_gateway.db.models import Device, Outbox, Task, ToolCall
from troika_gateway.desktop.devices import online
from troika_gateway.pipeline.states import CallStatus, TaskStatus
from troika_gateway.pipeline.sweeps import every
from troika_shared import catalogue
from troika_shared import task_events as ev
from troika_shared.desktop import device_key, seal_action
from troika_shared.messages import DesktopAction, ToolOutcome, ToolResult, decode, derive_id

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.store import TaskStore
    from troika_gateway.settings import GatewaySettings
    from troika_shared.messages import Message
    from troika_shared.messages import ToolCall as ProposedCall

__all__ = ["DesktopWaits", "is_desktop", "to_desktop"]

log = structlog.get_logger("troika.gateway.desktop")

_OPEN = (CallStatus.APPROVED.value, CallStatus.RUNNING.value)
_FINAL = tuple(s.value for s in TaskStatus if s.final)
_DESKTOP_TOOLS = tuple(name for name, d in catalogue.CATALOGUE.items() if d.runs_on == "desktop")


def is_desktop(tool: str) -> bool:
    """Whether calls of ``tool`` run on the person's PC."""
    definition = catalogue.CATALOGUE.get(tool)
    return definition is not None and definition.runs_on == "desktop"


async def _devices(db: AsyncSession, user_id: str) -> list[Device]:
    return list(
        await db.scalars(
            select(Device)
            .where(Device.user_id == user_id, Device.revoked_at.is_(None))
            .order_by(Device.created_at)
        )
    )


def _choose(devices: list[Device], wanted: str | None) -> Device | str:
    """The PC a call names (any case), or the person's only one, or the one connected now;
    else why there is none."""
    if wanted:
        named = [d for d in devices if d.name.casefold() == wanted.strip().casefold()]
        if named:
            return named[0]
        known = ", ".join(repr(d.name) for d in devices) or "none"
        return f"you have no PC named {wanted!r} (your PCs: {known})"
    if not devices:
        return (
            "no PC is paired with your account: pair one first (the web app's profile, or "
            "'troika devices pair-code' and 'troika-desktop pair')"
        )
    if len(devices) == 1:
        return devices[0]
    now = datetime.now(UTC)
    connected = [d for d in devices if online(d, now)]
    if len(connected) == 1:
        return connected[0]
    names = ", ".join(repr(d.name) for d in devices)
    return f"you have several PCs ({names}): name one in the call's 'device'"


async def to_desktop(
    db: AsyncSession,
    settings: GatewaySettings,
    *,
    message_id: str,
    task_id: str,
    user_id: str,
    subtask_id: str,
    call: ProposedCall,
) -> tuple[Message, ev.DesktopWaiting | None]:
    """The approved desktop call as an action sealed for the person's PC, and an event to
    announce when that PC is not connected now; or, when no PC fits, the call's failure."""
    chosen = _choose(await _devices(db, user_id), call.arguments.get("device"))
    approval = settings.seal_key()
    if isinstance(chosen, str) or approval is None:
        error = chosen if isinstance(chosen, str) else "the gateway has no secret key"
        failed = ToolResult(
            id=message_id,
            correlation_id=task_id,
            subtask_id=subtask_id,
            key=call.key,
            outcome=ToolOutcome(ok=False, error=error),
        )
        return failed, None
    seal = seal_action(
        device_key(approval, chosen.id),
        device_id=chosen.id,
        task_id=task_id,
        call_key=call.key,
        tool=call.tool,
        arguments=call.arguments,
    )
    action = DesktopAction(
        id=message_id,
        correlation_id=task_id,
        user_id=user_id,
        subtask_id=subtask_id,
        device_id=chosen.id,
        device_name=chosen.name,
        call=call,
        seal=seal,
    )
    waiting = None
    if not online(chosen):
        waiting = ev.DesktopWaiting(tool=call.tool, key=call.key, device=chosen.name)
    return action, waiting


class DesktopWaits:
    """Gives up on desktop actions that waited ``desktop_wait_s`` while none of the person's
    PCs was connected: the call fails and its task pauses to ask the person (their PC may be
    off), instead of waiting unseen.

    Args:
        sessionmaker: The database.
        settings: How long an action may wait, and how often to look.
        store: Changes tasks through the rules.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: GatewaySettings,
        store: TaskStore,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.store = store

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set."""
        interval = min(self.settings.watchdog_sweep_s, self.settings.desktop_wait_s / 4)
        await every(interval, self.sweep, stop, name="desktop_waits")

    async def sweep(self) -> list[str]:
        """Fails the calls that waited too long for their offline PC; returns their keys."""
        before = datetime.now(UTC) - timedelta(seconds=self.settings.desktop_wait_s)
        async with self.sessionmaker() as db:
            waiting = list(
                await db.execute(
                    select(
                        ToolCall.task_id,
                        ToolCall.key,
                        ToolCall.subtask_key,
                        ToolCall.proposals,
                        Task.user_id,
                    )
                    .join(Task, Task.id == ToolCall.task_id)
                    .where(
                        ToolCall.tool.in_(_DESKTOP_TOOLS),
                        ToolCall.status.in_(_OPEN),
                        ToolCall.updated_at <= before,
                        Task.status.not_in(_FINAL),
                    )
                    .limit(500)
                )
            )
            if not waiting:
                return []
            meant = await _meant_for(db, {task_id for task_id, *_ in waiting})
            devices: dict[str, list[Device]] = {}
            for *_, user_id in waiting:
                if user_id not in devices:
                    devices[user_id] = await _devices(db, user_id)
        given_up: list[str] = []
        minutes = self.settings.desktop_wait_s / 60
        for task_id, key, subtask, proposals, user_id in waiting:
            target = meant.get(key)  # the PC the action was sealed for (any, if not known)
            if any(online(d) for d in devices[user_id] if target in (None, d.id)):
                continue  # the PC is there: the action is on its way or running
            error = (
                f"your PC did not connect within {minutes:g} minutes: start troika-desktop on "
                "it, then continue the task"
            )
            result = ToolResult(
                id=derive_id(key, "desktop.gave_up", proposals),
                correlation_id=task_id,
                subtask_id=subtask,
                key=key,
                outcome=ToolOutcome(ok=False, error=error, needs_person=True),
            )
            log.warning("desktop.gave_up", task_id=task_id, key=key)
            await self.store.change(self.sessionmaker, task_id, result, message_id=result.id)
            given_up.append(key)
        return given_up


async def _meant_for(db: AsyncSession, task_ids: set[str]) -> dict[str, str]:
    """The PC each of these tasks' desktop actions was sealed for, by call key (from the
    outbox, where each action was committed with the approval that made it)."""
    payloads = await db.scalars(
        select(Outbox.payload)
        .where(Outbox.task_id.in_(task_ids), Outbox.kind == DesktopAction.__struct_config__.tag)
        .order_by(Outbox.created_at)
    )
    meant: dict[str, str] = {}
    for payload in payloads:
        with contextlib.suppress(msgspec.DecodeError):
            action = decode(payload)
            if isinstance(action, DesktopAction):
                meant[action.call.key] = action.device_id
    return meant
