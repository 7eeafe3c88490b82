"""How a proposed call is decided under the person's tool policies (no I/O: the policies are
read with the task's snapshot)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from troika_shared.catalogue import ToolDefinition

__all__ = ["decide"]


def decide(
    modes: dict[str, str],
    definition: ToolDefinition | None,
    arguments: dict[str, Any],
    *,
    approved_before: bool,
) -> tuple[Literal["ask", "approve", "deny"], str]:
    """How a proposed call is decided under its tool's policies ``{"user": …, "task": …}``.

    ``deny`` at either level wins; then the task's own policy, then the user's, then ``ask``.
    ``ask_once`` approves once a call of the tool was approved in the task; a call that needs
    the person's input, or a risky call of a tool that judges each call (a browser click that
    may submit), always asks. Returns the outcome and the rule that decided it.
    """
    for level in ("task", "user"):
        if modes.get(level) == "deny":
            return "deny", f"deny {_where(level)}"
    if definition is None or definition.always_asks(arguments):
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
