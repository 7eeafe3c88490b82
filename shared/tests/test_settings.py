"""Settings come from TROIKA_* variables, are checked, and cannot change after start."""

from __future__ import annotations

import pydantic
import pytest

from troika_shared.settings import AgentSettings, BusSettings, shown


def test_settings_read_troika_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROIKA_NATS_URL", "nats://a:1, nats://b:2")
    monkeypatch.setenv("TROIKA_BUS_PREFIX", "staging")
    monkeypatch.setenv("TROIKA_CONCURRENCY", "3")
    settings = AgentSettings()
    assert settings.nats_servers == ["nats://a:1", "nats://b:2"]
    assert settings.bus_prefix == "staging"
    assert settings.concurrency == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TROIKA_BUS_PREFIX", "a.b"), ("TROIKA_CONCURRENCY", "0"), ("TROIKA_ACK_WAIT_S", "soon")],
)
def test_bad_values_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError, match=variable.removeprefix("TROIKA_").lower()):
        AgentSettings()


def test_settings_are_frozen() -> None:
    settings = BusSettings()
    with pytest.raises(pydantic.ValidationError):
        settings.bus_prefix = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("nats://troika:s3cret@127.0.0.1:4222", "nats://troika:***@127.0.0.1:4222"),
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("nats://a:x@h1:4222, nats://a:y@h2:4222", "nats://a:***@h1:4222,nats://a:***@h2:4222"),
        ("nats://u:p@[::1]:4222", "nats://u:***@[::1]:4222"),
    ],
)
def test_addresses_are_printed_without_their_passwords(url: str, printed: str) -> None:
    assert shown(url) == printed
