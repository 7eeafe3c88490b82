"""A repeating schedule in plain words, turned into the cron expression the gateway takes.

Understood (case and extra words like "at", "on", "the" do not matter)::

    every minute · every 15 minutes · every hour · every 2 hours · hourly (at :MM)
    every day at 9 · daily at 18:30 · every weekday at 8am · every weekend at 10:00
    every monday at 9:30 · mondays and thursdays at 7pm · every month on the 1st at 9
    monthly on day 15 at 12:00

A cron expression (5 fields) is passed through as it is; the gateway checks it.
"""

from __future__ import annotations

import re

__all__ = ["RepeatError", "to_cron"]

_DAYS = {
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
    "sunday": 0,
}
_SHORT = {name[:3]: number for name, number in _DAYS.items()}
_CRON = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")
_TIME = re.compile(r"\b(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b")
_EVERY_N = re.compile(r"^every\s+(\d+)\s+(minute|hour)s?$")
_HOURLY = re.compile(r"^(?:every\s+hour|hourly)(?:\s+at\s+:?(\d{1,2}))?$")


class RepeatError(ValueError):
    """The words do not describe a schedule this understands; the message says what does."""


def _time(words: str) -> tuple[int, int]:
    match = _TIME.search(words)
    if match is None:
        raise RepeatError('say when, e.g. "at 9:30" or "at 6pm"')
    hour, minute, half = int(match[1]), int(match[2] or 0), match[3]
    if half:
        if not 1 <= hour <= 12:
            raise RepeatError(f"{match[0].strip()} is not a time")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise RepeatError(f"{match[0].strip()} is not a time")
    return hour, minute


def _weekdays(words: str) -> list[int]:
    found: list[int] = []
    for token in re.findall(r"[a-z]+", words):
        name = token.removesuffix("s")
        day = _DAYS.get(name, _SHORT.get(name))
        if day is not None and day not in found:
            found.append(day)
    return found


def to_cron(words: str) -> str:  # noqa: PLR0911, PLR0912 - one branch per form of words
    """The cron expression for ``words``.

    Raises:
        RepeatError: Nothing here understands the words.
    """
    text = " ".join(words.lower().replace(",", " ").split())
    if not text:
        raise RepeatError('describe how often, e.g. "every weekday at 9:00"')
    if _CRON.match(text) and not re.search(r"[a-z]{4,}", text):
        return text
    if text in ("every minute", "minutely"):
        return "* * * * *"
    if match := _EVERY_N.match(text):
        count, unit = int(match[1]), match[2]
        limit = 59 if unit == "minute" else 23
        if not 1 <= count <= limit:
            raise RepeatError(f"every {count} {unit}s is not a schedule (1 to {limit})")
        step = "*" if count == 1 else f"*/{count}"
        return f"{step} * * * *" if unit == "minute" else f"0 {step} * * *"
    if match := _HOURLY.match(text):
        minute = int(match[1] or 0)
        if minute > 59:
            raise RepeatError(f":{minute} is not a minute of the hour")
        return f"{minute} * * * *"
    if re.search(r"\b(month|monthly)\b", text):
        day_match = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)\b", text)
        day_match = day_match or re.search(r"\bday\s+(\d{1,2})\b", text)
        if day_match is None:
            raise RepeatError('say which day of the month, e.g. "on the 1st"')
        day = int(day_match[1])
        if not 1 <= day <= 31:
            raise RepeatError(f"{day} is not a day of the month")
        hour, minute = _time(text[: day_match.start()] + " " + text[day_match.end() :])
        return f"{minute} {hour} {day} * *"
    hour, minute = _time(text)
    if re.search(r"\b(every\s+day|daily|each\s+day)\b", text):
        return f"{minute} {hour} * * *"
    if re.search(r"\bweekdays?\b", text) and "weekend" not in text:
        return f"{minute} {hour} * * 1-5"
    if re.search(r"\bweekends?\b", text):
        return f"{minute} {hour} * * 0,6"
    days = _weekdays(text)
    if days:
        return f"{minute} {hour} * * " + ",".join(str(day) for day in sorted(days))
    raise RepeatError(
        'try "every day at 9:00", "every weekday at 8am", "every monday at 9:30", '
        '"every month on the 1st at 9", "every 15 minutes", or a cron expression'
    )
