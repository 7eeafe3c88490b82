"""The files a subtask promised: those its result names, and those its plan entry names (in its
title, description or acceptance criteria, such as "save it to report.md"). The gateway checks
that they exist and are not empty before a review; the reviewer sends back a subtask whose
promised file is missing or empty, whatever a model would say of it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from troika_shared.messages import Subtask, SubtaskResult

__all__ = ["named_files", "promised_files"]

_EXTENSIONS = (
    "csv|docx|gif|htm|html|ics|jpeg|jpg|json|md|pdf|png|py|svg|tsv|txt|webp|xls|xlsm|xlsx|xml|"
    "yaml|yml|zip"
)
_FILE = re.compile(rf"(?:[\w-]+/)*[\w][\w.-]*\.(?:{_EXTENSIONS})", re.IGNORECASE)
_QUOTES = "\"'`()[]{}<>*\u201c\u201d\u2018\u2019"  # quotes, brackets, emphasis around a name
_AFTER = ",;:!?."  # punctuation after one


def named_files(text: str) -> list[str]:
    """File names written in ``text`` (``report.md``, ``out/totals.csv``), once each, in
    order; a web or e-mail address is not a file name."""
    found: list[str] = []
    for word in text.split():
        name = word.strip(_QUOTES).rstrip(_AFTER).strip(_QUOTES).removeprefix("./")
        if "://" in word or "@" in word or name.lower().startswith("www."):
            continue
        if _FILE.fullmatch(name) and name not in found:
            found.append(name)
    return found


def promised_files(subtask: Subtask, result: SubtaskResult | None = None) -> tuple[str, ...]:
    """The files ``subtask`` promised: named by its result, its title, description or
    acceptance criteria."""
    texts = [subtask.title, subtask.description, *subtask.acceptance_criteria]
    names = list(result.files) if result is not None else []
    for name in named_files("\n".join(texts)):
        if name not in names:
            names.append(name)
    return tuple(names)
