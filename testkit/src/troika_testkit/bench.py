"""``make bench``: the whole pipeline under a fixed workload, measured.

The real services run as processes, started by the same code as ``troika up`` (embedded NATS
and Valkey unless ``TROIKA_NATS_URL`` / ``TROIKA_REDIS_URL`` name servers; SQLite in a fresh
data directory unless ``TROIKA_DATABASE_URL`` names a database), and the scripted LLM answers
at once. The benchmark drives them through the public API as a person would: one account, and
each proposed tool call approved as soon as the WebSocket announces it (see
``troika_testkit.workload``). On one stack it runs, after warm-up tasks (two for each process
of an agent service, so that none is measured cold): tasks one at a time, a batch submitted
together, a stream with a fixed number in flight, then tasks left waiting for an approval. A
second stack, with two processes per agent service, runs the tasks one at a time and the batch
again (only its batch is reported: both batches then start on stacks as warm); a third, on a
fresh PostgreSQL database, runs everything but the batch.

Written to the output file (JSON):

``calibration_ms``
    This machine's speed: CPU time of a fixed pure-Python loop (ten million additions), the
    median of three, taken first. Figures from different days or machines compare once
    divided by it; the ``targets`` are expressed that way.
``calibration_ms_end``
    The same loop once every stack has stopped. A shared machine's speed can move by a third
    within minutes: when this is far from ``calibration_ms``, the run's later stacks (two
    replicas, PostgreSQL) were measured on a slower or quicker machine than its first.
``step_overhead_ms_p50`` / ``_p99``
    Per agent answer (plan, executor step, review): the time from the request's creation to
    the answer's commit, less the LLM call's own latency. Read from the worker's
    ``answer.applied`` log lines, batch phase (``_one_task_at_a_time``: sequential phase).
``tasks_per_s`` / ``tasks_per_s_2_replicas``
    Tasks completed per second of the batch, from the first ``POST /tasks`` to the last
    completion, with one and with two processes per agent service.
``peak_rss_mb`` / ``peak_rss_mb_2_replicas``
    Each process's resident-memory high-water mark (the kernel's ``VmHWM``) after the batch.
``llm_prompt_tokens_per_task``
    Prompt tokens a task spends, as the system itself accounts them (the scripted server
    counts about four characters of messages and tool schemas per token).
``seq_step_overhead_ms_p50`` / ``_p99``
    Tasks run one at a time; per task, its wall time (``POST /tasks`` to the WebSocket's
    ``task.completed``) less the time the LLM server spent on its requests (timed by the
    server), divided by its agent answers (LLM requests). One sample per task.
``tasks_per_s_conc20``
    Tasks completed per second while a fixed number (20) are kept in flight: each one that
    ends is replaced by a new one until the phase's count is submitted.
``cpu_ms_per_task`` / ``cpu_ms_per_task_by_process``
    User plus system CPU time of every process of the stack (the services and the embedded
    NATS and Valkey; not the benchmark's driver, not the scripted LLM server) over the
    stream phase, divided by the tasks it completed; in all and per process. On PostgreSQL,
    ``postgres_server_cpu_ms_per_task`` adds the server processes serving the stack's
    connections (outside ``cpu_ms_per_task``; on SQLite that work is the services' own).
``pending_1000_rss_growth_mb`` / ``pending_rss_growth_mb_by_process``
    Growth of the gateway's and the worker's resident memory (``VmRSS``) from just before
    submitting 1,000 tasks (``--pending``) to when each of them waits for an approval that is
    never answered.
``postgres``
    The keys from ``seq_step_overhead_ms_p50`` on, measured on a fresh PostgreSQL database
    (created and dropped by the benchmark), or ``skipped`` saying why they are not.
``executor_bound``
    Does throughput grow with executor replicas? A batch of tasks whose every tool call takes
    two seconds (an ``http_request`` to a slow loopback server), two messages at a time per
    replica, run with one and with two processes per agent service: tasks per second of each,
    and the speedup (``--no-scaling`` skips it; see ``troika_testkit.scaling``).
``targets``
    Each target, as a bound on a figure divided by ``calibration_ms`` where it depends on the
    machine's speed, with the value, the absolute limit on this machine and ``met``.

    uv run python -m troika_testkit.bench --out var/bench/pipeline.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from troika_shared import heap
from troika_testkit.measurement import Run, Workload, fresh_database, measure, percentile
from troika_testkit.scaling import TASKS, executor_bound
from troika_testkit.scaling import figures as scaling_figures
from troika_testkit.servers import CI_POSTGRES_URL
from troika_testkit.targets import targets
from troika_testkit.workload import SUBTASKS, Phase

__all__ = ["calibration_ms", "main", "report", "section", "shortfalls"]

TARGET_STEP_OVERHEAD_MS = 5.0


def calibration_ms(rounds: int = 3) -> float:
    """CPU milliseconds of ten million pure-Python additions, the median of ``rounds``."""
    spent = []
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for number in range(10_000_000):
            total += number
        spent.append((time.process_time() - started) * 1000)
    return round(statistics.median(spent), 1)


def section(run: Run) -> dict[str, Any]:
    """The figures measured on every database."""
    stream = run.stream or Phase(frozenset(), 0, 0.0)
    done = stream.completed
    by_process = sorted(run.cpu_ms.items(), key=lambda item: -item[1])
    growth = {name: run.rss_after_mb[name] - run.rss_before_mb[name] for name in run.rss_after_mb}
    server: dict[str, float] = {}
    if run.database_cpu_ms is not None:
        server["postgres_server_cpu_ms_per_task"] = (
            round(run.database_cpu_ms / done, 2) if done else 0.0
        )
    return {
        "database": run.database,
        "seq_step_overhead_ms_p50": round(percentile(run.seq_overhead_ms, 50), 3),
        "seq_step_overhead_ms_p99": round(percentile(run.seq_overhead_ms, 99), 3),
        "seq_tasks_measured": len(run.seq_overhead_ms),
        "seq_agent_answers_per_task": statistics.median(run.answers_per_task or [0]),
        "tasks_per_s_conc20": round(stream.tasks_per_s, 3),
        "tasks_completed_conc20": done,
        "seconds_conc20": round(stream.seconds, 2),
        "cpu_ms_per_task": round(sum(run.cpu_ms.values()) / done, 2) if done else 0.0,
        "cpu_ms_per_task_by_process": {
            n: round(ms / done, 2) if done else 0.0 for n, ms in by_process
        },
        **server,
        "pending_1000_rss_growth_mb": round(sum(growth.values()), 1),
        "pending_rss_growth_mb_by_process": {name: round(mb, 1) for name, mb in growth.items()},
        "pending_tasks_waiting": run.waiting,
        "restarts": run.restarts,
    }


def report(
    one: Run, two: Run, postgres: Run | str, calibration: float, workload: Workload
) -> dict[str, Any]:
    """The benchmark's JSON document; ``postgres`` is the PostgreSQL run, or why there is none."""
    loaded = one.samples("overhead_ms", one.loaded)
    unloaded = one.samples("overhead_ms", one.sequential)
    p50 = percentile(loaded, 50)
    tokens = one.prompt_tokens
    batch, batch_two = (
        one.batch or Phase(frozenset(), 0, 0.0),
        two.batch or Phase(frozenset(), 0, 0.0),
    )
    main = section(one)
    other = section(postgres) if isinstance(postgres, Run) else {"skipped": postgres}
    return {
        "benchmark": "pipeline",
        "workload": {
            "tasks": workload.tasks,
            "subtasks_per_task": len(SUBTASKS),
            "tool_calls_per_subtask": 1,
            "submitted": "all at once, after warm-up tasks and tasks run one at a time",
            "approvals": "answered through the API as the WebSocket announces them",
            "llm": "scripted, answering at once",
            "sequential_tasks": workload.sequential,
            "conc_tasks": workload.conc_tasks,
            "concurrency": workload.concurrency,
            "pending_tasks": workload.pending,
        },
        "calibration_ms": calibration,
        "step_overhead_ms_p50": round(p50, 2),
        "step_overhead_ms_p99": round(percentile(loaded, 99), 2),
        "step_overhead_target_ms_p50": TARGET_STEP_OVERHEAD_MS,
        "step_overhead_meets_target": p50 < TARGET_STEP_OVERHEAD_MS,
        "step_overhead_ms_p50_one_task_at_a_time": round(percentile(unloaded, 50), 2),
        "step_overhead_ms_p99_one_task_at_a_time": round(percentile(unloaded, 99), 2),
        "step_overhead_ms_p50_by_answer": one.p50_by_answer("overhead_ms"),
        "to_agent_ms_p50_by_answer": one.p50_by_answer("there_ms"),
        "back_to_commit_ms_p50_by_answer": one.p50_by_answer("back_ms"),
        "agent_steps_measured": len(loaded),
        "tasks_per_s": round(batch.tasks_per_s, 3),
        "tasks_per_s_2_replicas": round(batch_two.tasks_per_s, 3),
        "seconds": round(batch.seconds, 2),
        "seconds_2_replicas": round(batch_two.seconds, 2),
        "tasks_completed": batch.completed,
        "tasks_completed_2_replicas": batch_two.completed,
        "approvals_answered": one.approvals + two.approvals,
        "unfinished": {
            **one.unfinished,
            **two.unfinished,
            **(postgres.unfinished if isinstance(postgres, Run) else {}),
        },
        "peak_rss_mb": one.peak_rss_mb,
        "peak_rss_mb_2_replicas": two.peak_rss_mb,
        "llm_prompt_tokens_per_task": round(statistics.fmean(tokens), 1) if tokens else 0,
        **main,
        "postgres": other,
        "targets": targets(
            calibration,
            {main["database"]: main, **({"postgres": other} if "skipped" not in other else {})},
            (batch.tasks_per_s, batch_two.tasks_per_s),
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def shortfalls(result: dict[str, Any], workload: Workload) -> list[str]:
    """What did not run as the workload says: tasks that did not complete or did not wait."""
    sections = {"": result}
    if "skipped" not in result["postgres"]:
        sections["postgres."] = result["postgres"]
    counts = [
        ("tasks_completed", result, workload.tasks),
        ("tasks_completed_2_replicas", result, workload.tasks),
    ]
    for prefix, figures in sections.items():
        counts += [
            (f"{prefix}tasks_completed_conc20", figures, workload.conc_tasks),
            (f"{prefix}pending_tasks_waiting", figures, workload.pending),
        ]
    short = [f"{task}: {why}" for task, why in result["unfinished"].items()]
    if "executor_bound" in result:
        done = result["executor_bound"]["tasks_completed"]
        short += [f"executor_bound.tasks_completed is {done} of {TASKS} each"] * (
            done != [TASKS, TASKS]
        )
    for name, figures, wanted in counts:
        got = figures[name.rpartition(".")[2]]
        if got != wanted:
            short.append(f"{name} is {got} of {wanted}")
    return short


async def _postgres(admin_url: str | None, workload: Workload, *, echo: bool) -> Run | str:
    if admin_url is None:
        return "not measured (--no-postgres)"
    async with contextlib.AsyncExitStack() as database:
        try:
            url = await database.enter_async_context(fresh_database(admin_url))
        except (OSError, asyncpg.PostgresError) as error:
            where = admin_url.rsplit("@", 1)[-1]
            return f"not measured: PostgreSQL at {where} did not answer ({error})"
        return await measure(
            workload, phases=("sequential", "stream", "pending"), database_url=url, echo=echo
        )


async def _main(args: argparse.Namespace, workload: Workload, calibration: float) -> dict[str, Any]:
    one = await measure(workload, echo=args.verbose)
    # the tasks one at a time first, as on the first stack, so both batches start as warm
    two = await measure(workload, replicas=2, phases=("sequential", "batch"), echo=args.verbose)
    postgres = await _postgres(
        None if args.no_postgres else args.postgres_url, workload, echo=args.verbose
    )
    result = report(one, two, postgres, calibration, workload)
    if not args.no_scaling:
        bound = [
            await executor_bound(replicas, timeout=workload.timeout, echo=args.verbose)
            for replicas in (1, 2)
        ]
        result["executor_bound"] = scaling_figures(*bound)
    return result


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and writes its JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m troika_testkit.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = Workload()
    flag = parser.add_argument
    flag(
        "--tasks", type=int, default=default.tasks, help="tasks in the batch (default %(default)s)"
    )
    flag(
        "--sequential",
        "--one-at-a-time",
        type=int,
        default=default.sequential,
        help="tasks run one at a time (default %(default)s)",
    )
    flag(
        "--conc-tasks",
        type=int,
        default=default.conc_tasks,
        help="tasks in the stream (default %(default)s)",
    )
    flag(
        "--concurrency",
        type=int,
        default=default.concurrency,
        help="tasks the stream keeps in flight (default %(default)s)",
    )
    flag(
        "--pending",
        type=int,
        default=default.pending,
        help="tasks left waiting for an approval (default %(default)s)",
    )
    flag(
        "--postgres-url",
        default=os.environ.get("TROIKA_TEST_POSTGRES_URL") or CI_POSTGRES_URL,
        help="a PostgreSQL database to create the run's own from (default %(default)s)",
    )
    flag("--no-postgres", action="store_true", help="measure on the default database only")
    flag("--no-scaling", action="store_true", help="skip the executor-bound phase")
    flag("--out", type=Path, default=Path("var/bench/pipeline.json"))
    flag("--timeout", type=float, default=default.timeout, help="seconds per phase")
    flag("--verbose", action="store_true", help="echo the services' output")
    args = parser.parse_args(argv)
    calibration = calibration_ms()  # first, before anything else runs in this process
    # The driver and the scripted model share this process: a full garbage collection pass
    # over everything it imported would stall both, and count as the stack's time.
    heap.settle()
    workload = Workload(
        tasks=args.tasks,
        sequential=args.sequential,
        conc_tasks=args.conc_tasks,
        concurrency=args.concurrency,
        pending=args.pending,
        timeout=args.timeout,
    )
    result = asyncio.run(_main(args, workload, calibration))
    result["calibration_ms_end"] = calibration_ms()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + f"\nwritten to {args.out}\n")
    if missing := shortfalls(result, workload):
        sys.stderr.write("incomplete:\n" + "".join(f"  {line}\n" for line in missing))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
