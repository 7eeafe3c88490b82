"""What can go wrong with a sandbox run, as the tool reports it."""

from __future__ import annotations

from troika_executor.jail_orders import MIB
from troika_shared.errors import PermanentError

__all__ = ["JailFailed", "ProcessesLeft", "SandboxError", "SandboxUnavailable", "WorkspaceTooLarge"]


class SandboxError(PermanentError):
    """The sandbox could not run the code at all (the code's own failures are in its result)."""


class WorkspaceTooLarge(SandboxError):
    """The workspace's files are more than a run may copy in.

    Attributes:
        size_bytes: The total size of the visible files.
        limit_bytes: The most a run copies in.
    """

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"the task's files take {size_bytes / MIB:.1f} MB, "
            f"more than the {limit_bytes / MIB:.0f} MB the code may be given"
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class SandboxUnavailable(SandboxError):
    """The isolation the operator asked for cannot be had here: ``run_python`` is refused.

    Attributes:
        reason: What is missing, and what the operator can do about it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProcessesLeft(SandboxError):
    """Processes of a run's uid outlived every SIGKILL: nothing is copied back.

    Attributes:
        uid: The run's uid.
        count: How many were still there.
    """

    def __init__(self, uid: int, count: int) -> None:
        super().__init__(
            f"{count} processes of the sandbox's uid {uid} could not be killed; "
            "the run's files were not copied back"
        )
        self.uid = uid
        self.count = count


class JailFailed(SandboxError):
    """The jail died before the code started: it could not confine it.

    Attributes:
        detail: What the jail wrote on its standard error.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"the sandbox could not start the code: {detail.strip()[-2000:]}")
        self.detail = detail
