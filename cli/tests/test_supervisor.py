"""The supervisor: prefixed output, restarts, giving up, stopping."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

from troika.supervisor import ChildSpec, GaveUp, Supervisor
from troika_testkit import scaled, wait_for

PY = sys.executable


def spec(name: str, code: str, **kwargs) -> ChildSpec:
    return ChildSpec(name, (PY, "-c", code), dict(os.environ), **kwargs)


async def test_each_line_carries_its_childs_label() -> None:
    out = io.StringIO()
    supervisor = Supervisor(out)
    await supervisor.start(
        [
            spec("alpha", "print('hello from a'); import time; time.sleep(30)"),
            spec("beta-long-name", "print('hello from b'); import time; time.sleep(30)"),
        ]
    )

    async def both_spoke() -> bool:
        return "hello from a" in out.getvalue() and "hello from b" in out.getvalue()

    await wait_for(both_spoke, what="both children's output")
    await supervisor.stop()
    lines = out.getvalue().splitlines()
    assert "alpha          | hello from a" in lines
    assert "beta-long-name | hello from b" in lines


async def test_a_crashed_child_is_restarted() -> None:
    out = io.StringIO()
    supervisor = Supervisor(out)
    marker = f"/tmp/troika-restart-{os.getpid()}"  # noqa: S108 - a unique, test-owned path
    code = (
        "import os, sys, time\n"
        f"p = {marker!r}\n"
        "if not os.path.exists(p):\n"
        "    open(p, 'w').close(); print('crashing'); sys.exit(3)\n"
        "os.remove(p); print('second life'); time.sleep(30)\n"
    )
    await supervisor.start([spec("flaky", code)])

    async def restarted() -> bool:
        return "second life" in out.getvalue()

    await wait_for(restarted, what="the restart")
    assert "flaky      | exited with status 3" in out.getvalue()
    assert supervisor.children[0].restarts == 1
    assert not supervisor.failed.done()
    await supervisor.stop()


async def test_a_child_that_keeps_crashing_is_given_up_on_with_its_last_words() -> None:
    supervisor = Supervisor(io.StringIO(), max_restarts=2)
    await supervisor.start([spec("broken", "print('no config file'); raise SystemExit(2)")])
    gave_up = await asyncio.wait_for(supervisor.failed, scaled(20))
    assert isinstance(gave_up, GaveUp)
    assert (gave_up.name, gave_up.returncode) == ("broken", 2)
    assert "no config file" in gave_up.last_lines
    assert supervisor.children[0].restarts == 2
    await supervisor.stop()


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    out = io.StringIO()
    supervisor = Supervisor(out, grace_s=0.5)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up'); time.sleep(60)"
    )
    await supervisor.start([spec("stubborn", code)])

    async def up() -> bool:
        return "up" in out.getvalue()

    await wait_for(up, what="the child")
    pid = supervisor.children[0].pid
    await asyncio.wait_for(supervisor.stop(), scaled(10))
    assert "did not stop within" in out.getvalue()
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists()  # noqa: ASYNC240 - /proc is not a disk
