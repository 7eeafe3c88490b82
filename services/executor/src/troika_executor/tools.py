"""The executor's tool implementations, keyed by the catalogue's names.

A tool never raises for a problem the agent can act on: it returns a failed
:class:`~troika_shared.messages.ToolOutcome` whose error says what went wrong. File work runs
in a thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import structlog
from pydantic import BaseModel, ValidationError

from troika_executor import mail, python_tool, search, social, tabular, web
from troika_executor.browser import BrowserCall, BrowserMissing, Browsers
from troika_executor.net import OutboundPolicy
from troika_executor.sandbox import DEFAULT_LIMITS, Sandbox, SandboxLimits
from troika_executor.workspace import OutsideWorkspace, Workspace
from troika_shared.catalogue import (
    CATALOGUE,
    AppendFileArgs,
    CreateFileArgs,
    DeleteFileArgs,
    ReadFileArgs,
)
from troika_shared.errors import RetryableError
from troika_shared.messages import ToolOutcome
from troika_shared.social import PLATFORMS, SOCIAL_TOOLS

__all__ = ["IMPLEMENTATIONS", "ToolContext", "Toolbox", "run_tool", "validate_arguments"]

log = structlog.get_logger("troika.executor.tools")


@dataclass(frozen=True, slots=True)
class Toolbox:
    """What every call shares: where the task folders are, which destinations outside the
    public internet the operator allows, the search backend, the Python sandbox with its
    limits (no sandbox: ``run_python`` is refused), the tasks' browsers (none: the browser
    tools are refused) and whether the model reads images (screenshots then come with the
    outcomes)."""

    data_dir: Path
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    search_backend: str = "auto"
    sandbox: Sandbox | None = None
    sandbox_limits: SandboxLimits = DEFAULT_LIMITS
    browsers: Browsers | None = None
    images: bool = False


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What one call may use: its task's folder, the shared toolbox, and the person's
    credentials that came with the approval (by kind: ``smtp``)."""

    workspace: Workspace
    toolbox: Toolbox
    credentials: dict[str, Any] = field(default_factory=dict)

    @property
    def outbound(self) -> OutboundPolicy:
        """The rule for reaching the network."""
        return self.toolbox.outbound


Implementation = Callable[[ToolContext, Any], Awaitable[ToolOutcome]]


async def _create_file(context: ToolContext, args: CreateFileArgs) -> ToolOutcome:
    workspace = context.workspace
    target = workspace.path(args.path)

    def write() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        partial.write_text(args.content, encoding="utf-8")
        partial.replace(target)

    await anyio.to_thread.run_sync(write)
    relative = str(target.relative_to(workspace.root))
    size = len(args.content.encode())
    return ToolOutcome(ok=True, output=f"wrote {relative} ({size} bytes)", files=(relative,))


async def _read_file(context: ToolContext, args: ReadFileArgs) -> ToolOutcome:
    workspace = context.workspace
    target = workspace.path(args.path)
    if not target.is_file():
        return ToolOutcome(ok=False, error=f"there is no file {args.path!r}")
    text = await anyio.to_thread.run_sync(
        lambda: target.read_text(encoding="utf-8", errors="replace")
    )
    if len(text) > args.max_chars:
        text = (
            text[: args.max_chars] + f"\n[truncated: {len(text) - args.max_chars} more characters]"
        )
    return ToolOutcome(ok=True, output=text)


async def _list_files(context: ToolContext, _: BaseModel) -> ToolOutcome:
    names = await anyio.to_thread.run_sync(context.workspace.files)
    return ToolOutcome(ok=True, output="\n".join(names) if names else "(the folder is empty)")


async def _append_file(context: ToolContext, args: AppendFileArgs) -> ToolOutcome:
    workspace = context.workspace
    target = workspace.path(args.path)

    def append() -> int:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as file:
            file.write(args.content)
        return target.stat().st_size

    size = await anyio.to_thread.run_sync(append)
    relative = str(target.relative_to(workspace.root))
    added = len(args.content.encode())
    return ToolOutcome(
        ok=True, output=f"added {added} bytes to {relative} (now {size} bytes)", files=(relative,)
    )


async def _delete_file(context: ToolContext, args: DeleteFileArgs) -> ToolOutcome:
    workspace = context.workspace
    target = workspace.path(args.path)
    if not target.is_file():
        return ToolOutcome(ok=False, error=f"there is no file {args.path!r}")
    await anyio.to_thread.run_sync(target.unlink)
    return ToolOutcome(ok=True, output=f"deleted {target.relative_to(workspace.root)}")


def _browser(action: str) -> Implementation:
    async def run(context: ToolContext, args: BaseModel) -> ToolOutcome:
        browsers = context.toolbox.browsers
        if browsers is None:
            return ToolOutcome(ok=False, error="the browser tools are turned off on this executor")
        call = BrowserCall(browsers, context.workspace, images=context.toolbox.images)
        try:
            outcome: ToolOutcome = await getattr(call, action)(args)
        except BrowserMissing as exc:
            return ToolOutcome(ok=False, error=str(exc))
        return outcome

    return run


def _post(platform: str) -> Implementation:
    async def run(context: ToolContext, args: BaseModel) -> ToolOutcome:
        return await social.post(PLATFORMS[platform], args, context.credentials, context.workspace)

    return run


IMPLEMENTATIONS: dict[str, Implementation] = {
    "create_file": _create_file,
    "read_file": _read_file,
    "list_files": _list_files,
    "append_file": _append_file,
    "delete_file": _delete_file,
    "read_csv": lambda context, args: tabular.read_csv(context.workspace, args),
    "analyze_csv": lambda context, args: tabular.analyze_csv(context.workspace, args),
    "edit_csv": lambda context, args: tabular.edit_csv(context.workspace, args),
    "read_excel": lambda context, args: tabular.read_excel(context.workspace, args),
    "edit_excel": lambda context, args: tabular.edit_excel(context.workspace, args),
    "web_search": lambda context, args: search.web_search(args, context.toolbox.search_backend),
    "web_search_news": lambda context, args: search.web_search_news(
        args, context.toolbox.search_backend
    ),
    "read_webpage": lambda context, args: web.read_webpage(args, context.outbound),
    "http_request": lambda context, args: web.http_request(args, context.outbound),
    "send_email": lambda context, args: mail.send_email(
        args, context.credentials.get("smtp"), context.workspace, context.outbound
    ),
    **{name: _post(platform) for name, (_, _, platform) in SOCIAL_TOOLS.items()},
    "run_python": lambda context, args: python_tool.run_python(
        args, context.toolbox.sandbox, context.workspace, context.toolbox.sandbox_limits
    ),
    **{
        f"browser_{action}": _browser(action)
        for action in (
            "open",
            "click",
            "fill",
            "select",
            "press",
            "scroll",
            "get_text",
            "screenshot",
            "download",
            "close",
            "hand_over",
        )
    },
}


def validate_arguments(tool: str, arguments: dict[str, Any]) -> BaseModel:
    """The arguments parsed by the tool's model.

    Raises:
        KeyError: No such tool.
        ValidationError: The arguments do not fit.
    """
    return CATALOGUE[tool].arguments.model_validate(arguments)


async def run_tool(
    toolbox: Toolbox,
    task_id: str,
    tool: str,
    arguments: dict[str, Any],
    credentials: dict[str, Any] | None = None,
) -> ToolOutcome:
    """Runs one tool call in the task's workspace and says how it went; ``credentials`` are
    the person's, opened from the approved call."""
    implementation = IMPLEMENTATIONS.get(tool)
    if implementation is None or tool not in CATALOGUE:
        return ToolOutcome(ok=False, error=f"there is no tool {tool!r}")
    try:
        parsed = validate_arguments(tool, arguments)
        workspace = Workspace(toolbox.data_dir, task_id)
        context = ToolContext(workspace, toolbox, credentials or {})
        return await implementation(context, parsed)
    except ValidationError as exc:
        return ToolOutcome(ok=False, error=f"invalid arguments: {exc.errors(include_url=False)}")
    except OutsideWorkspace as exc:
        return ToolOutcome(ok=False, error=f"refused: {exc}")
    except OSError as exc:
        return ToolOutcome(ok=False, error=f"{type(exc).__name__}: {exc.strerror or exc}")
    except RetryableError:
        raise  # not the call's outcome: the message is retried (a browser slot frees up)
    except Exception as exc:
        # A tool's own failure is the call's outcome: the agent hears it, the task goes on,
        # and the message is not redelivered to run the call again.
        log.exception("tool.crashed", tool=tool)
        return ToolOutcome(ok=False, error=f"{tool} failed: {type(exc).__name__}: {exc}"[:2000])
