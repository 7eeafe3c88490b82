"""The machine's slowness: set or measured, and every wait and time limit multiplied by it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from troika_testkit import scaled, slowness, wait_for
from troika_testkit.pace import ENV, MAX_SLOWNESS, measure


def test_the_variable_sets_the_factor(monkeypatch) -> None:
    monkeypatch.setenv(ENV, "2.5")
    assert slowness() == 2.5
    assert scaled(4) == 10


@pytest.mark.parametrize("value", ["0", "-1", "fast", "nan", "inf"])
def test_a_factor_that_is_not_a_positive_number_is_refused(monkeypatch, value: str) -> None:
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ValueError, match=f"{ENV} must be a positive number"):
        slowness()


def test_the_measured_factor_is_at_least_1_and_at_most_the_cap() -> None:
    assert 1 <= measure() <= MAX_SLOWNESS


def test_the_run_shares_one_factor_with_its_workers(slowness: float) -> None:
    # measured (or set) once, before the workers started: they read it from the environment
    assert float(os.environ[ENV]) == slowness


async def test_a_wait_lasts_its_timeout_times_the_factor(monkeypatch) -> None:
    monkeypatch.setenv(ENV, "3")

    async def never() -> bool:
        return False

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timed out after 0\.3s waiting for nothing"):
        await wait_for(never, timeout=0.1, what="nothing")
    assert time.monotonic() - started >= 0.3


CHILD = """
import time
import pytest

@pytest.mark.timeout(1.5)
def test_within_its_longer_limit():
    time.sleep(1)

@pytest.mark.timeout(0.25)
def test_past_its_longer_limit():
    time.sleep(3)
"""


@pytest.mark.slow
def test_each_tests_time_limit_is_multiplied_by_the_factor(tmp_path) -> None:
    (tmp_path / "test_child.py").write_text(CHILD)
    env = {**os.environ, ENV: "4"}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=scaled(60), check=False,
    )  # fmt: skip
    assert "machine slowness: 4.00 (set by TROIKA_TEST_SLOWNESS" in child.stdout, child.stdout
    assert "PASSED test_child.py::test_within_its_longer_limit" in child.stdout, child.stdout
    assert "FAILED test_child.py::test_past_its_longer_limit" in child.stdout, child.stdout
    assert "Timeout (>1.0s) from pytest-timeout" in child.stdout, child.stdout
