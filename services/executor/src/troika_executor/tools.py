"""The executor's tool implementations, keyed by the catalogue's names.

A tool never raises for a problem the agent can act on: it returns a failed
:class:`~troika_shared.messages.ToolOutcome` whose error says what went wrong. File work runs
in a thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from pydantic import BaseModel, ValidationError

from troika_executor.workspace import OutsideWorkspace, Workspace
from troika_shared.catalogue import CATALOGUE, CreateFileArgs, ReadFileArgs
from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["IMPLEMENTATIONS", "run_tool", "validate_arguments"]

Implementation = Callable[[Workspace, Any], Awaitable[ToolOutcome]]


async def _create_file(workspace: Workspace, args: CreateFileArgs) -> ToolOutcome:
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


async def _read_file(workspace: Workspace, args: ReadFileArgs) -> ToolOutcome:
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


async def _list_files(workspace: Workspace, _: BaseModel) -> ToolOutcome:
    names = await anyio.to_thread.run_sync(workspace.files)
    return ToolOutcome(ok=True, output="\n".join(names) if names else "(the folder is empty)")


IMPLEMENTATIONS: dict[str, Implementation] = {
    "create_file": _create_file,
    "read_file": _read_file,
    "list_files": _list_files,
}


def validate_arguments(tool: str, arguments: dict[str, Any]) -> BaseModel:
    """The arguments parsed by the tool's model.

    Raises:
        KeyError: No such tool.
        ValidationError: The arguments do not fit.
    """
    return CATALOGUE[tool].arguments.model_validate(arguments)


async def run_tool(
    data_dir: Path, task_id: str, tool: str, arguments: dict[str, Any]
) -> ToolOutcome:
    """Runs one tool call in the task's workspace and says how it went."""
    implementation = IMPLEMENTATIONS.get(tool)
    if implementation is None or tool not in CATALOGUE:
        return ToolOutcome(ok=False, error=f"there is no tool {tool!r}")
    try:
        parsed = validate_arguments(tool, arguments)
        return await implementation(Workspace(data_dir, task_id), parsed)
    except ValidationError as exc:
        return ToolOutcome(ok=False, error=f"invalid arguments: {exc.errors(include_url=False)}")
    except OutsideWorkspace as exc:
        return ToolOutcome(ok=False, error=f"refused: {exc}")
    except OSError as exc:
        return ToolOutcome(ok=False, error=f"{type(exc).__name__}: {exc.strerror or exc}")
