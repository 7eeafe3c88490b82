"""``make bench`` stays runnable: a small workload through the real stack writes every number."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from troika_testkit import scaled

# Two stacks, one after the other: in the `troika up` tests' group (see tests/conftest.py). The
# time limit is longer than the run's own below, so that a run too slow shows its output.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("up"), pytest.mark.timeout(180)]

SERVICES = {"gateway", "worker", "planner", "executor", "reviewer"}


def test_the_benchmark_runs_the_workload_and_writes_its_numbers(tmp_path) -> None:
    out = tmp_path / "pipeline.json"
    finished = subprocess.run(
        [sys.executable, "-m", "troika_testkit.bench", "--tasks", "3", "--sequential", "2",
         "--conc-tasks", "4", "--concurrency", "2", "--pending", "5", "--no-postgres",
         "--no-scaling",
         "--timeout", str(scaled(60)), "--out", str(out)],
        capture_output=True, text=True, timeout=scaled(160), check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["tasks_completed"], result["tasks_completed_2_replicas"]) == (3, 3)
    assert result["unfinished"] == {}
    # one approval per subtask of every task but the pending ones: 2 to warm up, 2 run one at
    # a time, 3 together and 4 in the stream with one replica; 4 to warm up, 2 one at a time
    # and 3 together with two
    assert result["approvals_answered"] == 3 * (2 + 2 + 3 + 4 + 4 + 2 + 3)
    assert result["agent_steps_measured"] == 3 * (1 + 3 * 2 + 1)  # plan, 2 steps each, review
    assert 0 < result["step_overhead_ms_p50"] <= result["step_overhead_ms_p99"]
    assert result["step_overhead_ms_p50_one_task_at_a_time"] > 0
    assert result["tasks_per_s"] > 0
    assert result["tasks_per_s_2_replicas"] > 0
    assert set(result["peak_rss_mb"]) == SERVICES
    assert all(mb > 20 for mb in result["peak_rss_mb"].values())
    assert {"planner-1", "planner-2", "executor-2"} <= set(result["peak_rss_mb_2_replicas"])
    assert result["llm_prompt_tokens_per_task"] > 500  # the catalogue alone is that big

    assert result["calibration_ms"] > 0
    assert result["calibration_ms_end"] > 0
    assert result["database"] == "sqlite"
    assert result["seq_tasks_measured"] == 2
    assert result["seq_agent_answers_per_task"] == 8
    assert 0 < result["seq_step_overhead_ms_p50"] <= result["seq_step_overhead_ms_p99"]
    assert result["tasks_completed_conc20"] == 4
    assert result["tasks_per_s_conc20"] > 0
    by_process = result["cpu_ms_per_task_by_process"]
    assert set(by_process) == SERVICES | {"nats", "valkey"}
    assert result["cpu_ms_per_task"] > 0
    assert result["cpu_ms_per_task"] == pytest.approx(sum(by_process.values()), abs=0.1)
    assert by_process["worker"] > 0
    assert by_process["executor"] > 0
    assert result["pending_tasks_waiting"] == 5
    assert isinstance(result["pending_1000_rss_growth_mb"], float)
    assert set(result["pending_rss_growth_mb_by_process"]) == {"gateway", "worker"}
    assert result["postgres"] == {"skipped": "not measured (--no-postgres)"}
    assert "executor_bound" not in result  # --no-scaling

    targets = result["targets"]
    seq = targets["seq_step_overhead_ms_p50_sqlite"]
    assert seq["value"] == result["seq_step_overhead_ms_p50"]
    assert seq["ratio"] == pytest.approx(seq["value"] / result["calibration_ms"], abs=1e-4)
    assert seq["met"] == (seq["ratio"] <= 0.004)
    throughput = targets["tasks_per_s_conc20_sqlite"]
    assert throughput["met"] == (throughput["ratio"] >= 10)
    assert targets["cpu_ms_per_task_postgres"]["met"] is None  # not measured
    replicas = targets["tasks_per_s_2_replicas"]
    assert replicas["met"] == (result["tasks_per_s_2_replicas"] >= result["tasks_per_s"])
