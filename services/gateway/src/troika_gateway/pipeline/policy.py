"""How a proposed call is decided under the person's tool policies (no I/O: the policies are
read with the task's snapshot)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from troika_shared.catalogue import ToolDefinition

__all__ = ["decide"]


def decide(
    modes: dict[str, str], definition: ToolDefinition | None, *, approved_before: bool
) -> tuple[Literal["ask", "approve", "deny"], str]:
    """How a proposed call is decided under its tool's policies ``{"user": …, "task": …}``.

    ``deny`` at either level wins; then the task's own policy, then the user's, then ``ask``.
    ``ask_once`` approves once a call of the tool was approved in the task; a tool with an
    input form always asks. Returns the outcome and the rule that decided it.
    """
    for level in ("task", "user"):
        if modes.get(level) == "deny":
            return "deny", f"deny {_where(level)}"
    if definition is None or definition.needs_input:
        return "ask", ""
    level = "task" if "task" in modes else "user"
    mode = modes.get(level, "ask")
    if mode == "allow":
        return "approve", f"allow {_where(level)}"
    if mode == "ask_once" and approved_before:
        return "approve", f"ask once {_where(level)}"
    return "ask", ""


def _where(level: str) -> str:
    return "for all tasks" if level == "user" else "for this task"
