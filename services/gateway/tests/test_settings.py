"""The gateway refuses to start without a usable secret key, and says why."""

from __future__ import annotations

import os
import subprocess
import sys

import pydantic
import pytest

from troika_gateway.settings import GatewaySettings
from troika_testkit import scaled


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("short-key", "use at least 32"),
        ("changeme", "well-known"),
        ("secret", "well-known"),
        ("a" * 40, "too few characters"),
    ],
)
def test_weak_secret_keys_are_refused(key: str, reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=reason):
        GatewaySettings(secret_key=key)


def test_the_database_defaults_to_sqlite_in_the_data_dir(tmp_path) -> None:
    settings = GatewaySettings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'troika.db'}"


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "TROIKA_SECRET_KEY is not set"), ("changeme", "well-known example value")],
)
def test_the_gateway_will_not_start_without_a_good_key(tmp_path, key, message) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    env["TROIKA_DATA_DIR"] = str(tmp_path)
    if key is not None:
        env["TROIKA_SECRET_KEY"] = key
    result = subprocess.run(
        [sys.executable, "-m", "troika_gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
