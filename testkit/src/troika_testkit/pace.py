"""How fast this machine runs today, so that tests wait long enough on a slow or busy one.

The tests' time limits (waits for processes, servers and tasks; each test's own limit) are what
a quiet machine needs. On a slower or busier one they are multiplied by :func:`slowness`: the wall
time a fixed pure-Python loop takes, over the time it takes on a quiet development machine (at
least 1, at most :data:`MAX_SLOWNESS`). Wall time, not CPU time: a busy machine gives this process
a smaller share of a core, which its CPU time would not show.

``TROIKA_TEST_SLOWNESS=3`` sets the factor instead of measuring it. The test kit's plugin
measures once, in the process that starts the test run, and puts the result in that variable,
so pytest-xdist's workers (and the processes tests start) read it rather than measure again.
"""

from __future__ import annotations

import functools
import math
import os
import time

__all__ = ["ENV", "MAX_SLOWNESS", "configured", "measure", "scaled", "slowness"]

ENV = "TROIKA_TEST_SLOWNESS"
MAX_SLOWNESS = 8.0
"""A limit on the measured factor: past it, the machine is not slow but stuck, and waiting
longer would only make a run that fails take most of an hour."""

_STEPS = 10_000_000
_CHUNK = 1_000_000
_REFERENCE_S = 0.5
"""The loop's wall time on a quiet 2-core development machine (0.3-0.4 s), with some room, so
that a quiet machine measures 1."""


def _count(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += i
    return total


def measure() -> float:
    """Times the loop now and returns the factor, from 1 to :data:`MAX_SLOWNESS`."""
    started = time.perf_counter()
    for _ in range(_STEPS // _CHUNK):
        _count(_CHUNK)
        if time.perf_counter() - started > MAX_SLOWNESS * _REFERENCE_S:
            break  # the cap is reached; the rest of the loop would change nothing
    elapsed = time.perf_counter() - started
    return min(MAX_SLOWNESS, max(1.0, elapsed / _REFERENCE_S))


def configured() -> float | None:
    """The factor ``TROIKA_TEST_SLOWNESS`` sets, if it is set.

    Raises:
        ValueError: It is set to something other than a positive number.
    """
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    try:
        factor = float(value)
    except ValueError:
        factor = math.nan
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"{ENV} must be a positive number (1 is a quiet machine), not {value!r}")
    return factor


@functools.cache
def _measured() -> float:
    return measure()  # once per process: the loop takes half a second


def slowness() -> float:
    """How many times longer than on a quiet machine the tests should wait: the factor
    ``TROIKA_TEST_SLOWNESS`` sets, or else the one measured (once per process)."""
    factor = configured()
    return _measured() if factor is None else factor


def scaled(seconds: float) -> float:
    """``seconds`` (what a quiet machine needs) times :func:`slowness`; for any other unit of
    time too, such as Playwright's milliseconds."""
    return seconds * slowness()
