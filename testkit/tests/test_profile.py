"""``make profile`` stays runnable: the stack's processes charge their CPU time to their stacks
while tasks run, and the summary names the pipeline's own code where the worker spends it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from troika_testkit import scaled

# One stack, in the `troika up` tests' group (see tests/conftest.py), as the benchmark's test.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("up"), pytest.mark.timeout(150)]


def test_profiling_samples_every_service_and_names_where_the_worker_spends(tmp_path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "troika_testkit.profile", "--tasks", "3", "--concurrency", "2",
         "--rate", "200", "--timeout", str(scaled(60)), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=scaled(120), check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert summary.startswith("3 tasks, ")
    for service in ("gateway", "worker", "planner", "executor", "reviewer"):
        assert f"== {service}: " in summary  # its samples' file was written and read
    # Collapsed stacks, as speedscope and flamegraph.pl read. Samples come with CPU time used,
    # not with time passed, so even the planner's few milliseconds in three tasks are charged.
    for service in ("gateway", "worker", "planner", "executor", "reviewer"):
        lines = (tmp_path / f"{service}.txt").read_text().splitlines()
        assert lines, service
        assert all(line.rsplit(" ", 1)[1].isdigit() for line in lines), lines[:3]
    worker = summary.split("== worker: ", 1)[1].split("\n== ", 1)[0]
    assert "TaskStore.change (troika_gateway/pipeline/store.py)" in worker
    assert "% " in worker.split("-- packages, own", 1)[1]
