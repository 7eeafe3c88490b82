"""Property-based fuzzing of the whole API from its OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from troika_testkit import scaled
from troika_testkit.ports import free_port

from .conftest import STRONG_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def gateway_process(tmp_path, nats_url, redis_url, bus_prefix, platforms):
    """The gateway as its own process (schemathesis drives it synchronously from outside); the
    social platforms it asks about pasted tokens are the loopback ones."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    env.update(
        TROIKA_SECRET_KEY=secrets.token_urlsafe(48),
        TROIKA_DATA_DIR=str(tmp_path / "data"),
        TROIKA_NATS_URL=nats_url,
        TROIKA_REDIS_URL=redis_url,
        TROIKA_REDIS_PREFIX=f"{bus_prefix}:",
        TROIKA_BUS_PREFIX=bus_prefix,
        TROIKA_GATEWAY_PORT=str(port),
        TROIKA_PASSWORD_TIME_COST="1",
        TROIKA_PASSWORD_MEMORY_KIB="8192",
        TROIKA_LOGIN_ATTEMPTS_PER_ADDRESS="100000",
        TROIKA_LOGIN_ATTEMPTS_PER_ACCOUNT="100000",
        TROIKA_MAX_UPLOAD_BYTES="65536",
        TROIKA_LOG_FORMAT="json",
        TROIKA_LOG_LEVEL="warning",
        TROIKA_TWITTER_API_URL=platforms.base("x"),
        TROIKA_INSTAGRAM_API_URL=platforms.base("instagram"),
        TROIKA_FACEBOOK_API_URL=platforms.base("facebook"),
        TROIKA_LINKEDIN_API_URL=platforms.base("linkedin"),
    )
    log = (tmp_path / "gateway.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "troika_gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    # as long as the other tests give a gateway: its start shares the machine with whole stacks
    deadline = time.monotonic() + scaled(60)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        log.close()
        pytest.fail("the gateway did not become ready:\n" + (tmp_path / "gateway.log").read_text())
    yield url
    process.terminate()
    process.wait(scaled(15))
    log.close()
    if any(
        line
        for line in (tmp_path / "gateway.log").read_text().splitlines()
        if "request.failed" in line
    ):
        pytest.fail(
            "the gateway logged unexpected errors:\n" + (tmp_path / "gateway.log").read_text()
        )


def test_no_input_makes_the_api_fail_with_a_server_error(gateway_process, tmp_path) -> None:
    url = gateway_process
    httpx.post(
        f"{url}/auth/register",
        json={"email": "fuzz@example.com", "username": "fuzz", "password": STRONG_PASSWORD},
    ).raise_for_status()
    token = httpx.post(
        f"{url}/auth/login", json={"login": "fuzz", "password": STRONG_PASSWORD}
    ).json()
    task = httpx.post(
        f"{url}/tasks",
        json={"objective": "fuzzing target"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    ).json()
    assert task["status"] == "planning"
    command = [
        shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis",
        "run",
        f"{url}/schema/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        # per operation; the suite's share of the machine (TROIKA_FUZZ_EXAMPLES=500 hunts longer)
        os.environ.get("TROIKA_FUZZ_EXAMPLES", "25"),
        "--exclude-path",
        "/auth/logout",  # would end the session the fuzzer signs in with
        "--header",
        f"Authorization: Bearer {token['access_token']}",
        "--generation-deterministic",
        "--request-timeout",
        "20",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=scaled(540), check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated is not None, result.stdout[-3000:]
    assert int(generated.group(1)) > 200  # the run really exercised the API
    assert "Server error" not in result.stdout
