"""A task's folder as the tools see it: relative paths only, nothing outside it."""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath

__all__ = ["OutsideWorkspace", "Workspace"]


class OutsideWorkspace(ValueError):
    """A path that is absolute, climbs out with ``..``, or resolves outside through a link."""


class Workspace:
    """The folder of one task.

    Args:
        data_dir: The shared data directory.
        task_id: The task.
    """

    def __init__(self, data_dir: Path, task_id: str) -> None:
        if not task_id or "/" in task_id or task_id in (".", ".."):
            raise OutsideWorkspace(f"not a task id: {task_id!r}")
        self.root = _workspaces(data_dir) / task_id
        if self.root.is_symlink():  # only someone at the machine makes one: follow it
            self.root = self.root.resolve()

    def path(self, relative: str) -> Path:
        """The absolute path of ``relative`` inside the workspace.

        Raises:
            OutsideWorkspace: The path would lead outside the task's folder.
        """
        pure = PurePosixPath(relative.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise OutsideWorkspace(f"{relative!r} is not a path inside the task's folder")
        if any(part.startswith(".") for part in pure.parts):
            raise OutsideWorkspace(f"{relative!r}: hidden files are not allowed")
        target = (self.root / pure).resolve()
        if not target.is_relative_to(self.root):
            raise OutsideWorkspace(f"{relative!r} leads outside the task's folder")
        if any(part.startswith(".") for part in target.relative_to(self.root).parts):
            # a link with an ordinary name that leads to the ledger, the browser's state…
            raise OutsideWorkspace(f"{relative!r}: hidden files are not allowed")
        return target

    def files(self) -> list[str]:
        """Every file in the workspace, as relative paths."""
        if not self.root.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        )


def _workspaces(data_dir: Path) -> Path:
    """The folder of the task folders, its links followed (worked out once it exists: every
    step of every task asks, and following links costs a system call per folder on the way)."""
    folder = data_dir / "workspaces"
    return _resolved(folder) if folder.is_dir() else folder.resolve()


@functools.lru_cache(maxsize=8)
def _resolved(folder: Path) -> Path:
    return folder.resolve()
