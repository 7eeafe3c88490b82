"""``troika task`` reads times in this machine's zone unless told another."""

from __future__ import annotations

import zoneinfo

from troika.task_cli import local_zone


def test_the_tz_variable_names_the_zone(monkeypatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_zone() == "Asia/Tokyo"
    monkeypatch.setenv("TZ", ":Europe/Berlin")  # the form glibc also reads
    assert local_zone() == "Europe/Berlin"


def test_an_unknown_zone_is_never_sent(monkeypatch) -> None:
    monkeypatch.setenv("TZ", "Mars/Olympus_Mons")
    zone = local_zone()  # the system's own, or UTC: always one the gateway knows
    assert zone == "UTC" or zone in zoneinfo.available_timezones()
