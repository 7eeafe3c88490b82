"""Fire times as cron computes them, daylight-saving changes included."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from troika_gateway.scheduling.times import (
    InvalidSchedule,
    describe,
    fire_times,
    localize,
    next_fire,
)

BERLIN = ZoneInfo("Europe/Berlin")


def local(times: list[datetime]) -> list[str]:
    return [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times]


def test_a_daily_job_in_the_hour_skipped_in_spring_runs_right_after_the_change() -> None:
    times = fire_times("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), 3)
    assert local(times) == ["03-29 03:00 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]


def test_a_daily_job_in_the_hour_repeated_in_autumn_runs_once() -> None:
    times = fire_times("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    assert local(times) == ["10-25 02:30 CEST", "10-26 02:30 CET", "10-27 02:30 CET"]


def test_an_hourly_job_runs_every_real_hour_across_the_changes() -> None:
    spring = fire_times("0 * * * *", "Europe/Berlin", datetime(2026, 3, 28, 23, tzinfo=UTC), 3)
    assert local(spring) == ["03-29 01:00 CET", "03-29 03:00 CEST", "03-29 04:00 CEST"]
    autumn = fire_times("0 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 23, tzinfo=UTC), 3)
    assert local(autumn) == ["10-25 02:00 CEST", "10-25 02:00 CET", "10-25 03:00 CET"]


def test_times_are_read_in_the_schedules_zone() -> None:
    after = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert next_fire("0 9 * * 1", "America/New_York", after) == datetime(
        2026, 11, 30, 14, tzinfo=UTC
    )
    assert next_fire("*/10 * * * * *", "UTC", after) == datetime(
        2026, 11, 27, 12, 0, 10, tzinfo=UTC
    )


def wall(*parts: int) -> datetime:
    """A wall-clock time without a zone, as a person types it."""
    return datetime(*parts)  # noqa: DTZ001 - deliberately without one


def test_local_times_without_an_offset_take_the_zone_and_skipped_ones_move_forward() -> None:
    assert localize(wall(2026, 7, 1, 9), "Europe/Berlin") == datetime(2026, 7, 1, 7, tzinfo=UTC)
    skipped = localize(wall(2026, 3, 29, 2, 30), "Europe/Berlin")
    assert skipped.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    repeated = localize(wall(2026, 10, 25, 2, 30), "Europe/Berlin")
    assert repeated.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"
    with pytest.raises(InvalidSchedule) as refused:
        localize(wall(2026, 7, 1, 9), None)
    assert refused.value.field == "timezone"


def test_expressions_are_described_in_plain_words() -> None:
    assert describe("0 9 * * 1-5") == "At 09:00 on Monday through Friday"
    assert describe("* * * * *") == "Every minute"
