"""What a person must never read on a page: raw validation errors, Python reprs, the
program's own identifiers (statuses, policy modes) where words belong, and times as programs
write them (ISO 8601 with its offset) where the person's own clock belongs.

The browser tests' screenshots check each page's text with :func:`raw_text`.
"""

from __future__ import annotations

import re

from troika_shared.catalogue import CATALOGUE

__all__ = ["raw_text"]

_RAW = (
    (re.compile(r"validation error|errors\.pydantic\.dev|Input should be|Expected `"),
     "validation text"),
    (re.compile(r"Traceback \(most recent call last\)|\w+Error: |object at 0x[0-9a-f]+"),
     "a Python error or repr"),
    (re.compile(r"\{'[^'\n]{0,80}': |\[\{'|\bNone\b"), "a Python repr"),
    (re.compile(r"<<<(?:END )?DATA\b|<failed_attempts>"), "the agents' own markup"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})"),
     "a time as programs write it"),
)  # fmt: skip
_IDENTIFIER = re.compile(r"(?<![\w./@-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/@-]|\.\w)")


def raw_text(text: str) -> list[str]:
    """What in ``text`` is not for people, each as ``"what: the text"`` (empty when none).

    A lower-case word with underscores is an identifier (``awaiting_approval``, ``ask_once``)
    unless it names a tool, which people see by its name (``create_file``); a file name such
    as ``my_notes.md`` is not one.
    """
    found = [f"{what}: {match.group(0)!r}" for pattern, what in _RAW
             for match in pattern.finditer(text)]  # fmt: skip
    found.extend(
        f"an identifier: {match.group(0)!r}"
        for match in _IDENTIFIER.finditer(text)
        if match.group(0) not in CATALOGUE
    )
    return found
