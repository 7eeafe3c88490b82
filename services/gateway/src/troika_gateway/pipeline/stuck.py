"""The stuck rules: when a task pauses to ask the person instead of letting the agents guess.

Each rule has its threshold (a setting, in :class:`~.snapshot.Limits`) or none where the agent
or the budget says, and the reason the person reads.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MODEL_FAULTS",
    "PERIODS",
    "PERSON_LIMITS",
    "STUCK",
    "TASK_BUDGETS",
    "Stuck",
    "in_tokens",
    "limit_reached",
    "limit_words",
]


class Stuck(StrEnum):
    """Why a task pauses for the person."""

    CANNOT_PROCEED = "cannot_proceed"
    GAVE_UP = "gave_up"
    DENIALS = "denials"
    TOOL_FAILURES = "tool_failures"
    REVISION_ROUNDS = "revision_rounds"
    UNUSABLE_ANSWERS = "unusable_answers"
    SAME_CALL = "same_call"
    STEP_BUDGET = "step_budget"
    TOKEN_BUDGET = "token_budget"  # noqa: S105 - the name of a rule, not a secret
    COST_BUDGET = "cost_budget"
    PERSON_BUDGET = "person_budget"
    NEEDS_PERSON = "needs_person"


STUCK: dict[Stuck, tuple[str | None, str]] = {
    # rule: (the threshold in Limits, or None where the agent or the budget says; the reason)
    Stuck.CANNOT_PROCEED: (None, "the {agent} cannot proceed: {detail}"),
    Stuck.GAVE_UP: (None, "the {agent} could not handle a request: {detail}"),
    Stuck.DENIALS: ("stuck_denials", "{count} tool calls were denied in this task"),
    Stuck.TOOL_FAILURES: ("stuck_tool_failures", "{count} tool calls failed in a row"),
    Stuck.REVISION_ROUNDS: ("stuck_revision_rounds", "the reviewer sent work back {count} times"),
    Stuck.UNUSABLE_ANSWERS: (
        "stuck_unusable_answers",
        "the {agent}'s answer could not be used {count} times in a row: {said}",
    ),
    Stuck.SAME_CALL: (
        "stuck_same_call",
        "the executor proposed the same {tool} call {count} times",
    ),
    Stuck.STEP_BUDGET: (None, "the step budget of {limit} steps is used up"),
    Stuck.TOKEN_BUDGET: (None, "the token budget of {limit} tokens is used up"),
    Stuck.COST_BUDGET: (None, "the cost budget of ${limit:.2f} is used up"),
    Stuck.PERSON_BUDGET: (None, "{used_up}; raise it in your profile, then continue"),
    Stuck.NEEDS_PERSON: (None, "{tool} needs you: {detail}"),
}

# The pauses a weak model causes (its answers, not the person's choices or the tools).
MODEL_FAULTS = frozenset({Stuck.UNUSABLE_ANSWERS, Stuck.SAME_CALL})

TASK_BUDGETS = frozenset({Stuck.STEP_BUDGET, Stuck.TOKEN_BUDGET, Stuck.COST_BUDGET})
"""The task's own budgets: raising the one used up resumes the task."""

PERIODS = {"day": ("daily", "today"), "month": ("monthly", "this month")}
"""A person's limit periods, as the reasons name them: the limit's word and the spending's."""

PERSON_LIMITS = ("day", "month", "day_tokens", "month_tokens")
"""A person's own limits, as their keys: money (US dollars) a day and a month, then tokens."""


def in_tokens(key: str) -> bool:
    """Whether a person's limit (a key of :data:`PERSON_LIMITS`) counts tokens, not dollars."""
    return key.endswith("_tokens")


def limit_words(key: str, limit: float, used: float, *, when: bool = False) -> str:
    """A person's limit that is used up, in words ("your daily budget of $0.50 is used up
    ($0.75 spent)"); ``when`` adds the period to what was used ("spent today")."""
    period = key.removesuffix("_tokens")
    limit_word, spent_words = PERIODS[period]
    during = f" {spent_words}" if when else ""
    if in_tokens(key):
        return (
            f"your {limit_word} token limit of {int(limit):,} tokens is used up "
            f"({int(used):,} used{during})"
        )
    return f"your {limit_word} budget of ${limit:.2f} is used up (${used:.2f} spent{during})"


def limit_reached(
    limits: Mapping[str, float], spent: Mapping[str, float]
) -> tuple[str, float, float] | None:
    """The first of the person's own limits their tasks have reached, as ``(key, limit,
    used)`` (``None``: none is); keys as in :data:`PERSON_LIMITS`."""
    for key in PERSON_LIMITS:
        limit, used = limits.get(key), spent.get(key, 0.0)
        if limit is not None and used >= limit:
            return key, limit, used
    return None
