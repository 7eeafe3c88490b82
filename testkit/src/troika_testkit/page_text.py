"""What a person must never read on a page: raw validation errors, Python reprs, the
program's own identifiers (statuses, policy modes, event kinds) where words belong, and times
as programs write them (ISO 8601) where the person's own clock belongs.

The browser tests check each page's text with :func:`raw_text`: at every screenshot, and on
the pages they only look at.
"""

from __future__ import annotations

import re
import typing

from troika_shared.catalogue import CATALOGUE
from troika_shared.task_events import AnyTaskEvent

__all__ = ["raw_text"]

_RAW = (
    # pydantic (v1 and v2) and msgspec, as their messages read
    (re.compile(r"validation errors? for|errors\.pydantic\.dev|Input should be|Expected `"
                r"|Field required|String should have|value is not a valid|Value error, "
                r"|Object missing required field|Object contains unknown field"),
     "validation text"),
    (re.compile(r"Traceback \(most recent call last\)|\w+Error: |object at 0x[0-9a-f]+"),
     "a Python error or repr"),
    (re.compile(r"\{'[^'\n]{0,80}': |\[\{'|\['[^'\n]{0,80}', '|\bNone\b"
                r"|<\w+\.\w+: |\b[A-Z]\w+\((?:[a-z_]+=)"),
     "a Python repr"),
    (re.compile(r"(?<![\w.])(?:undefined|NaN|Invalid Date|\[object Object\])(?![\w.])"),
     "a JavaScript value"),
    (re.compile(r"<<<(?:END )?DATA\b|<failed_attempts>"), "the agents' own markup"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"), "a time as programs write it"),
    (re.compile(r"\b[A-Z][A-Za-z]+\.[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"
                r"|\b[A-Z][a-z]+[A-Z][A-Za-z]*\.[A-Z]{2,}\b"
                r"|(?<![\w./@-])(?!(?:TROIKA|OTEL|OPENAI|REFLEX)_)[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b"),
     "an enum's name or member"),
)  # fmt: skip
_IDENTIFIER = re.compile(r"(?<![\w./@-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/@-]|\.\w)")
_KINDS = frozenset(str(cls.__struct_config__.tag) for cls in typing.get_args(AnyTaskEvent))
_DOTTED = re.compile(r"(?<![\w./@-])[a-z]+\.[a-z_]+(?![\w/@-]|\.\w)")


def raw_text(text: str) -> list[str]:
    """What in ``text`` is not for people, each as ``"what: the text"`` (empty when none).

    A lower-case word with underscores is an identifier (``awaiting_approval``, ``ask_once``)
    unless it names a tool, which people see by its name (``create_file``); a file name such
    as ``my_notes.md`` is not one. An event's kind (``agent.unusable_answer``) is one too.
    The settings' environment variables (``TROIKA_LLM_BASE_URL``) are what a person types, so
    they pass; an enum's name or member (``ASK_ONCE``, ``TaskStatus.COMPLETED``) does not.
    """
    found = [f"{what}: {match.group(0)!r}" for pattern, what in _RAW
             for match in pattern.finditer(text)]  # fmt: skip
    found.extend(
        f"an identifier: {match.group(0)!r}"
        for match in _IDENTIFIER.finditer(text)
        if match.group(0) not in CATALOGUE
    )
    found.extend(
        f"an event's kind: {match.group(0)!r}"
        for match in _DOTTED.finditer(text)
        if match.group(0) in _KINDS
    )
    return found
