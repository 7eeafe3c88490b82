"""``make profile``: where each process of the stack spends its CPU under the benchmark's load.

The stack starts as ``make bench`` starts it (the real services as processes, the scripted LLM
answering at once, SQLite unless ``TROIKA_DATABASE_URL`` names a database), warms up, then runs
a stream of tasks (``--tasks``, ``--concurrency`` in flight, every tool call approved through
the API) while each Python process charges its CPU time to the stacks it runs
(:mod:`.cpu_sampler`, armed in each process; ``--rate`` samples per second of CPU).

Written to ``--out`` (``var/profile``): ``<process>.txt``, its stacks in collapsed form with the
microseconds of CPU charged to each (open it in speedscope.app, or give it to flamegraph.pl),
and ``summary.txt``, also printed: each process's CPU time per task, and its hottest functions by
the CPU they used themselves and under them, and its packages by the CPU they used themselves.
Only CPU time counts: a thread waiting, for a lock, an answer or a core, is charged nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from troika_testkit.measurement import Workload, measure
from troika_testkit.sampling import read

if TYPE_CHECKING:
    from collections import Counter

    from troika_testkit.measurement import Run

__all__ = ["main", "summary"]


def summary(run: Run, top: int = 15) -> str:
    """The run's CPU time per task, and each process's hottest code, as text."""
    done = run.stream.completed if run.stream else 0
    lines = [f"{done} tasks, {run.stream.seconds if run.stream else 0:.1f} s"]
    spent = {name: ms / max(done, 1) for name, ms in run.cpu_ms.items()}
    lines.append(
        "CPU ms per task: "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(spent.items(), key=lambda i: -i[1]))
    )
    for name, path in sorted(run.profiles.items(), key=lambda item: -spent.get(item[0], 0)):
        tally = read(path)
        lines += ["", f"== {name}: {tally.samples / 1000:.0f} ms of CPU sampled ({path})"]
        if not tally.samples:
            continue
        lines += _section("own", tally.own, tally.samples, top)
        lines += _section("total, Troika's own functions", tally.total, tally.samples, top)
        lines += _section("packages, own", tally.packages, tally.samples, top)
    return "\n".join(lines) + "\n"


def _section(title: str, counts: Counter[str], samples: int, top: int) -> list[str]:
    return [f"-- {title}"] + [
        f"{100 * count / samples:6.1f} %  {name}" for name, count in counts.most_common(top)
    ]


def main(argv: list[str] | None = None) -> None:
    """Runs the workload with every service sampled and writes the samples and their summary."""
    parser = argparse.ArgumentParser(
        prog="python -m troika_testkit.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = Workload()
    flag = parser.add_argument
    flag(
        "--tasks",
        type=int,
        default=default.conc_tasks,
        help="tasks in the stream (default %(default)s)",
    )
    flag(
        "--concurrency",
        type=int,
        default=default.concurrency,
        help="tasks in flight (default %(default)s)",
    )
    flag(
        "--rate",
        type=int,
        default=default.profile_rate,
        help="samples per second of CPU time (default %(default)s)",
    )
    flag("--top", type=int, default=15, help="lines per list (default %(default)s)")
    flag("--out", type=Path, default=default.profile_dir)
    flag("--timeout", type=float, default=default.timeout, help="seconds the stream may take")
    flag("--verbose", action="store_true", help="echo the services' output")
    args = parser.parse_args(argv)
    workload = Workload(
        conc_tasks=args.tasks,
        concurrency=args.concurrency,
        timeout=args.timeout,
        profile_dir=args.out,
        profile_rate=args.rate,
    )
    run = asyncio.run(measure(workload, phases=("profile",), echo=args.verbose))
    text = summary(run, args.top)
    (args.out / "summary.txt").write_text(text)
    sys.stdout.write(text + f"written to {args.out}\n")
    if run.stream is None or run.stream.completed < args.tasks:
        sys.stderr.write(f"incomplete: {run.unfinished or 'not every task finished'}\n")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
