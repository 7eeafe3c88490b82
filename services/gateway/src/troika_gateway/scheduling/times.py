"""When schedules fire: one time in a time zone, or a cron expression read as cron reads it.

Cron expressions have five fields (minute, hour, day of month, month, day of week) or six with
seconds first. Fire times are computed in the schedule's IANA time zone with ``cronsim``, which
treats daylight-saving changes as Debian's cron does: a job at a fixed time that falls into the
hour skipped in spring runs right after the change, and one in the hour repeated in autumn runs
once.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

__all__ = [
    "Clock",
    "InvalidSchedule",
    "SystemClock",
    "describe",
    "fire_times",
    "localize",
    "next_fire",
    "remaining",
    "zone",
]


class InvalidSchedule(ValueError):
    """A schedule that cannot run: the field at fault and why.

    Attributes:
        field: The request field (``cron``, ``timezone``, ``run_at``…).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Clock(Protocol):
    """Where schedules read the time (a test can run one faster than the wall clock)."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    def seconds_until(self, moment: datetime) -> float:
        """Wall-clock seconds until ``moment`` on this clock (negative when it has passed)."""
        ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return datetime.now(UTC)

    def seconds_until(self, moment: datetime) -> float:
        """Seconds until ``moment``."""
        return moment.timestamp() - time.time()


def zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``.

    Raises:
        InvalidSchedule: No such time zone.
    """
    if name in _known_zones():
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise InvalidSchedule("timezone", f"{name!r} is not a known IANA time zone")


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def localize(moment: datetime, timezone: str | None, field: str = "run_at") -> datetime:
    """An aware UTC time for ``moment``: as given when it carries an offset, else read as wall
    time in ``timezone`` (a time skipped by a daylight-saving change moves forward by the gap, a
    repeated one means its first occurrence).

    Raises:
        InvalidSchedule: A local time without a time zone, an unknown time zone, or a time
            out of range (``field`` names the request's field).
    """
    try:
        return _in_utc(moment, timezone)
    except OverflowError:
        raise InvalidSchedule(field, "that time is out of range") from None


def _in_utc(moment: datetime, timezone: str | None) -> datetime:
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment.astimezone(UTC)
    if not timezone:
        raise InvalidSchedule(
            "timezone", "a time without an offset needs a `timezone` such as 'Europe/Berlin'"
        )
    # fold=0: the offset in force before a change, which is what both rules above come to.
    return moment.replace(tzinfo=zone(timezone), fold=0).astimezone(UTC)


def _sim(cron: str, after: datetime, timezone: str) -> CronSim:
    tz = zone(timezone)
    start = after.astimezone(tz)
    try:
        return CronSim(cron, start)
    except CronSimError as exc:
        raise InvalidSchedule("cron", f"not a valid cron expression: {exc}") from None


def next_fire(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, in UTC (``None`` when there is none).

    Raises:
        InvalidSchedule: The expression or the time zone is not valid.
    """
    sim = _sim(cron, after, timezone)
    try:
        moment: datetime = next(sim)
    except (StopIteration, CronSimError, OverflowError):
        return None
    return moment.astimezone(UTC)


def fire_times(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``after``, in UTC.

    Raises:
        InvalidSchedule: The expression or the time zone is not valid.
    """
    sim = _sim(cron, after, timezone)
    times: list[datetime] = []
    with contextlib.suppress(OverflowError):  # the calendar ends in the year 9999
        for moment in sim:
            times.append(moment.astimezone(UTC))
            if len(times) == count:
                break
    return times


def describe(cron: str) -> str:
    """The expression in plain words ("At 09:00 on Monday"), or itself when it has none."""
    try:
        text: str = CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC)).explain()
    except (CronSimError, ValueError, KeyError, IndexError):
        return cron
    return text


def remaining(moment: datetime | None, clock: Clock) -> float | None:
    """Seconds from now until ``moment`` (0 when it has passed; ``None`` without one)."""
    if moment is None:
        return None
    return max(0.0, (moment - clock.now()) / timedelta(seconds=1))
