"""The executor's handlers: a step request in, proposed calls or a result out; an approved
tool call in, its outcome out."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog

from troika_executor.ledger import CallLedger
from troika_executor.social import media_problems
from troika_executor.stepping import (
    FINISH,
    MAX_CALLS,
    MORE_TOOLS,
    STUCK,
    SYSTEM,
    Offer,
    prompt,
    to_tool_calls,
)
from troika_executor.tools import Toolbox, run_tool
from troika_executor.workspace import Workspace
from troika_shared import tracing
from troika_shared.approvals import verify_approval
from troika_shared.catalogue import CATALOGUE
from troika_shared.costs import estimate_tokens
from troika_shared.errors import DependencyUnavailable
from troika_shared.files import FileChanged
from troika_shared.llm import ContextTooSmall, UnusableAnswer
from troika_shared.messages import (
    Message,
    StepProposed,
    StepRequested,
    SubtaskResult,
    ToolExecute,
    ToolOutcome,
    ToolResult,
    Usage,
    derive_id,
)
from troika_shared.router import Router
from troika_shared.vault import VaultError, open_call_secrets

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from troika_executor.browser import Browsers
    from troika_executor.files import TaskFiles
    from troika_shared.bus import Bus
    from troika_shared.files import Mirror
    from troika_shared.functions import Function, FunctionCall
    from troika_shared.llm import LLM

__all__ = ["StoppedTasks", "build_router", "execute", "step", "sweep_browsers"]

log = structlog.get_logger("troika.executor")


async def step(
    request: StepRequested, llm: LLM, shots: Path | None = None, data_dir: Path | None = None
) -> StepProposed:
    """Decides a subtask's next step.

    The model is offered the subtask's tools; when it asks for more (``more_tools``), it is
    asked again at once with those added. A request too big for the model's context is told
    as such (a configuration problem, not the model's bad answer). ``shots``: the data folder,
    where the task's latest screenshot is read to show a model that reads images; ``data_dir``:
    the data folder, where the images of a proposed post are checked before the person is
    asked.
    """
    reply = partial(
        StepProposed,
        id=derive_id(request.id, "step.proposed"),
        correlation_id=request.correlation_id,
        subtask_id=request.subtask_id,
        requested_at=request.occurred_at,
        request_id=request.id,
    )
    spent: list[Usage] = []
    offer = Offer.first(request)
    workspace = Workspace(data_dir, request.correlation_id) if data_dir is not None else None

    def problems(calls: Sequence[FunctionCall]) -> list[str]:
        found = offer.problems(calls)
        if workspace is not None and not found:
            found = [p for call in calls for p in media_problems(workspace, call.name,
                                                                  call.arguments)]  # fmt: skip
        return found

    while True:
        functions = offer.functions()
        room = _room(llm, functions)
        try:
            messages = prompt(request, room=room, model=getattr(llm, "model", ""), shots=shots)
            choice = await llm.choose(
                system=SYSTEM,
                messages=messages,
                functions=functions,
                check=problems,
                max_calls=MAX_CALLS,
            )
        except UnusableAnswer as exc:
            context = llm.context_tokens
            if (
                isinstance(exc, ContextTooSmall)
                and exc.available is None
                and exc.needed
                and context is not None
                and room is not None
            ):  # the conversation's own size, plus what the rest of the request takes
                exc = ContextTooSmall(exc.needed + context - room, context, exc.usage)
            log.warning("step.unusable", reason=exc.reason, configuration=not exc.model_fault)
            usage = (*spent, exc.usage)
            return reply(stuck_reason=exc.reason, unusable=exc.model_fault, usage=usage)
        spent.append(choice.usage)
        first = choice.calls[0]
        if first.name == MORE_TOOLS:
            offer = offer.widened(request, first.arguments["tools"])
            continue
        if first.name == FINISH:
            result = SubtaskResult(
                summary=str(first.arguments["result"]).strip(),
                files=tuple(first.arguments.get("files") or ()),
            )
            return reply(result=result, usage=tuple(spent))
        if first.name == STUCK:
            return reply(stuck_reason=str(first.arguments["reason"]).strip(), usage=tuple(spent))
        return reply(tool_calls=to_tool_calls(request, choice.calls), usage=tuple(spent))


def _room(llm: LLM, functions: list[Function]) -> int | None:
    """Tokens left for the conversation once the instructions, the functions and the answer
    are counted (``None``: the model's context is not known)."""
    if llm.context_tokens is None:
        return None
    return (
        llm.context_tokens - llm.max_tokens - estimate_tokens(SYSTEM) - llm.offer_tokens(functions)
    )


async def execute(
    request: ToolExecute,
    toolbox: Toolbox,
    seal_key: bytes | None,
    stopped: Callable[[str], Awaitable[bool]] | None = None,
    *,
    secrets_key: bytes | None = None,
    files: TaskFiles | None = None,
) -> ToolResult:
    """Runs one approved tool call in the task's folder, at most once per idempotency key.

    A call runs only under the gateway's seal on exactly this call (see
    :mod:`troika_shared.approvals`); anything else is refused without running. The outcome is
    kept in the task's folder (where no tool can reach it) before the message is acknowledged,
    so a redelivered request after a crash returns the kept outcome instead of running the call
    again; a call that cannot be taken back (a post, an e-mail) and was started but never
    recorded (the executor stopped while it ran) is not run again. A call of a task that has
    stopped (cancelled while the call was on its way) is refused, as ``stopped`` tells. The
    person's credentials that came sealed for this call are opened with ``secrets_key`` and
    handed to the tool alone. Where the task's files live in a bucket (``files``), the folder
    is brought up to date first and what the call changed is written back after.
    """
    call = request.call
    with tracing.tool_run(call.tool, call.key, request.correlation_id) as span:
        outcome, how = await _execute(request, toolbox, seal_key, stopped, secrets_key, files)
        span.set_attribute("troika.tool.outcome", how)
        if how != "succeeded":
            tracing.failed(span, outcome.error or how)
    return ToolResult(
        id=derive_id(request.id, "tool.result"),
        correlation_id=request.correlation_id,
        subtask_id=request.subtask_id,
        key=request.call.key,
        outcome=outcome,
        requested_at=request.occurred_at,
    )


async def _execute(  # noqa: PLR0917 - execute's arguments, passed on
    request: ToolExecute,
    toolbox: Toolbox,
    seal_key: bytes | None,
    stopped: Callable[[str], Awaitable[bool]] | None,
    secrets_key: bytes | None,
    files: TaskFiles | None,
) -> tuple[ToolOutcome, str]:
    """The call's outcome, and how it came: ``succeeded`` or ``failed`` (it ran, or ran before
    and was recalled), ``refused`` (no valid approval), ``skipped`` (the task stopped),
    ``interrupted`` (an irreversible call that started before and is not run again)."""
    workspace = Workspace(toolbox.data_dir, request.correlation_id)
    mirror = files.mirror(request.correlation_id, workspace.root) if files else None
    if mirror is not None:
        await mirror.pull()
    ledger = CallLedger(workspace)
    definition = CATALOGUE.get(request.call.tool)
    irreversible = definition is not None and definition.irreversible
    outcome = await ledger.recall(request.call.key)
    how = ""
    if outcome is None and not (
        seal_key is not None
        and verify_approval(seal_key, request.correlation_id, request.call, request.approval)
    ):
        log.warning("tool.refused", tool=request.call.tool, key=request.call.key)
        outcome = ToolOutcome(ok=False, error="refused: the call does not carry a valid approval")
        how = "refused"
    elif outcome is None and stopped is not None and await stopped(request.correlation_id):
        log.info("tool.skipped", tool=request.call.tool, reason="the task has stopped")
        outcome = ToolOutcome(ok=False, error="not run: the task stopped before the call ran")
        how = "skipped"
    elif outcome is None and irreversible and await ledger.interrupted(request.call.key):
        log.warning("tool.interrupted", tool=request.call.tool, key=request.call.key)
        outcome = ToolOutcome(ok=False, error=(
            "not run again: this call was already started when the executor stopped, so it may "
            "or may not have gone out; check (the account, the mailbox) before asking again"
        ))  # fmt: skip
        how = "interrupted"
    elif outcome is None:
        try:
            credentials = _credentials(request, secrets_key)
        except VaultError:
            log.warning("tool.credentials_unreadable", tool=request.call.tool)
            outcome = ToolOutcome(
                ok=False,
                error="the person's credentials for this call could not be opened; "
                "they may need to enter them again",
            )
        else:
            if irreversible:
                await ledger.begin(request.call.key)
                if mirror is not None:  # every replica sees that it started
                    await mirror.push()
            outcome = await run_tool(
                toolbox, request.correlation_id, request.call.tool, request.call.arguments,
                credentials,
            )  # fmt: skip
            if mirror is not None:
                outcome = await _write_back(mirror, outcome)
        await ledger.remember(request.call.key, outcome)
        if mirror is not None:
            await mirror.push()
    return outcome, how or ("succeeded" if outcome.ok else "failed")


async def _write_back(mirror: Mirror, outcome: ToolOutcome) -> ToolOutcome:
    """Writes the call's changes back to the bucket; a file another step changed meanwhile
    keeps that step's version, and the call's outcome says so."""
    try:
        await mirror.push()
    except FileChanged as exc:
        await mirror.pull()  # the other step's version, over this call's
        return ToolOutcome(ok=False, error=(
            f"the call ran, but its changes to the task's files were not kept: {exc} by "
            "another step meanwhile; read the file again and redo the change"
        ))  # fmt: skip
    return outcome


def _credentials(request: ToolExecute, key: bytes | None) -> dict[str, Any]:
    """The credentials sealed for this call (none when none came).

    Raises:
        VaultError: They came but do not open (another deployment's key, or damaged).
    """
    if not request.secrets:
        return {}
    if key is None:
        raise VaultError("no key to open credentials with")
    return open_call_secrets(key, request.correlation_id, request.call.key, request.secrets)


class StoppedTasks:
    """Looks up, on the bus, whether a task has stopped; bound to the bus once it connects."""

    def __init__(self) -> None:
        self._bus: Bus | None = None

    async def bind(self, bus: Bus) -> None:
        """Called by the runner with the connected bus."""
        self._bus = bus

    async def __call__(self, task_id: str) -> bool:
        """Whether the task has stopped.

        Raises:
            DependencyUnavailable: The bus is not connected or did not answer (retry later).
        """
        if self._bus is None:
            raise DependencyUnavailable("nats", "not connected yet")
        return await self._bus.stopped(task_id)


async def sweep_browsers(
    browsers: Browsers,
    stopped: Callable[[str], Awaitable[bool]],
    quit_sweeping: asyncio.Event,
    every_s: float = 30.0,
) -> None:
    """Closes the pages of tasks that stopped, and idle ones, every ``every_s`` seconds until
    ``quit_sweeping`` is set."""
    while not quit_sweeping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(quit_sweeping.wait(), every_s)
            return
        try:
            closed = await browsers.sweep(stopped)
        except DependencyUnavailable as exc:
            log.warning("browser.sweep_postponed", error=str(exc))
        except Exception:
            log.exception("browser.sweep_failed")
        else:
            if closed:
                log.info("browser.swept", closed=closed, open=len(browsers.open_tasks))


def build_router(
    llm: LLM,
    toolbox: Toolbox,
    seal_key: bytes | None,
    stopped: StoppedTasks | None = None,
    *,
    secrets_key: bytes | None = None,
    files: TaskFiles | None = None,
) -> Router:
    """The executor's router."""
    router = Router("executor")

    shots = toolbox.data_dir if llm.sees_images else None

    async def on_step(request: StepRequested) -> list[Message]:
        root = Workspace(toolbox.data_dir, request.correlation_id).root
        mirror = files.mirror(request.correlation_id, root) if files else None
        if mirror is not None:  # the files a step looks at (a post's images, the screenshot)
            await mirror.pull()
        return [await step(request, llm, shots, toolbox.data_dir)]

    async def on_execute(request: ToolExecute) -> list[Message]:
        return [await execute(request, toolbox, seal_key, stopped, secrets_key=secrets_key,
                              files=files)]  # fmt: skip

    router.add(StepRequested, on_step)
    router.add(ToolExecute, on_execute)
    return router
