"""``make bench`` stays runnable: a small workload through the real stack writes every number."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_the_workload_and_writes_its_numbers(tmp_path) -> None:
    out = tmp_path / "pipeline.json"
    finished = subprocess.run(
        [sys.executable, "-m", "troika_testkit.bench", "--tasks", "3", "--one-at-a-time", "1",
         "--timeout", "60", "--out", str(out)],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["tasks_completed"], result["tasks_completed_2_replicas"]) == (3, 3)
    assert result["unfinished"] == {}
    # one approval per subtask: 3 tasks in each run, a warm-up task in each, one single task
    assert result["approvals_answered"] == 3 * (3 * 2 + 2 + 1)
    assert result["agent_steps_measured"] == 3 * (1 + 3 * 2 + 1)  # plan, 2 steps each, review
    assert 0 < result["step_overhead_ms_p50"] <= result["step_overhead_ms_p99"]
    assert result["step_overhead_ms_p50_one_task_at_a_time"] > 0
    assert result["tasks_per_s"] > 0
    assert result["tasks_per_s_2_replicas"] > 0
    assert set(result["peak_rss_mb"]) == {"gateway", "worker", "planner", "executor", "reviewer"}
    assert all(mb > 20 for mb in result["peak_rss_mb"].values())
    assert {"planner-1", "planner-2", "executor-2"} <= set(result["peak_rss_mb_2_replicas"])
    assert result["llm_prompt_tokens_per_task"] > 500  # the catalogue alone is that big
