"""Why an agent's answer could not be used, in one sentence a person reads.

The model clients say what was wrong in the terms the model is told (``invalid arguments for
create_file: path: Field required``); the task's timeline and its pause say it plainly ("it
proposed a create_file call without its path"), and keep the exact words for the curious.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from troika_shared.words import kind, listed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["in_words"]

_PREFIX = "the model's answer was not usable: "
_PROBLEM = re.compile(r"(?:^|; )([\w.]+): ([^;]+)")


def _field(where: str) -> str:
    """``subtasks.0.title`` → ``title``: the name a person recognises."""
    parts = [part for part in where.split(".") if not part.isdigit()]
    return (parts[-1] if parts else where).replace("_", " ")


def _fields(problems: str) -> tuple[list[str], list[str]]:
    """The fields left out, and the fields of the wrong kind, in pydantic's ``where: what``."""
    missing, wrong = [], []
    for where, what in _PROBLEM.findall(problems):
        if what.strip() == "Field required":
            missing.append(_field(where))
        else:
            found = re.search(r"should be (?:a valid )?(\w+)", what)
            said = kind(found[1]) if found else ""
            wrong.append(f"{_field(where)} (not {said})" if said else _field(where))
    return missing, wrong


def _arguments(tool: str, problems: str) -> str:
    missing, wrong = _fields(problems)
    if missing:
        return f"it proposed a {tool} call without its {listed(missing)}"
    if wrong:
        return f"it proposed a {tool} call with a wrong {listed(wrong)}"
    return f"it proposed a {tool} call whose arguments do not fit the tool"


_SAID: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"invalid arguments for ([\w-]+): (.*)"), lambda m: _arguments(m[1], m[2])),
    (
        re.compile(r"there is no function '([^']+)'"),
        lambda m: f"it asked for a tool that does not exist ({m[1]})",
    ),
    (re.compile(r"([\w-]+) cannot be used here"), lambda m: f"it chose {m[1]}, which is not here"),
    (
        re.compile(r"(\w+) must be the only call of its answer"),
        lambda m: f"it called {m[1]} together with other calls in one answer",
    ),
    (
        re.compile(r"at most (\d+) tool calls at a time"),
        lambda m: f"it proposed more than {m[1]} tool calls at once",
    ),
    (re.compile(r"cut off at (\d+) tokens"), lambda m: f"its answer was cut off at {m[1]} tokens"),
    (
        re.compile(r"the model endpoint refused the request \((\d+|None)\)"),
        lambda m: (
            "the model's server refused the request" + ("" if m[1] == "None" else f" (HTTP {m[1]})")
        ),
    ),
    (re.compile(r"the answer was text, not a function call"), "it answered in prose"),
    (
        re.compile(r"the answer was empty|call one of the functions"),
        "it answered without choosing anything to do",
    ),
    (re.compile(r"not a JSON object|is not an object"), "its answer was not valid JSON"),
    (re.compile(r"names no function"), "it made a call without naming a tool"),
)


def in_words(reason: str) -> str:
    """The plain sentence for an unusable answer's ``reason`` ("it proposed a create_file
    call without its path"); a reason of no known shape says so without its jargon."""
    text = reason.removeprefix(_PREFIX)
    for pattern, say in _SAID:
        if found := pattern.search(text):
            return say if isinstance(say, str) else say(found)
    missing, wrong = _fields(text)
    if missing:
        return f"its answer left out the {listed(missing)}"
    if wrong:
        return f"its answer had a wrong {listed(wrong)}"
    return "its answer did not have the form that was asked for"
