"""The CPU sampler behind ``make profile`` charges CPU time, and only CPU time, to the code that
used it: on whichever thread, and through SQLAlchemy's greenlets."""

from __future__ import annotations

import threading
import time

import greenlet

from troika_testkit.cpu_sampler import CpuSampler


def spin(seconds: float) -> None:
    """Uses ``seconds`` of this thread's CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def spin_long() -> None:
    spin(0.2)


def spin_short() -> None:
    spin(0.1)


def wait_without_working() -> None:
    time.sleep(0.3)


def spin_in_thread() -> None:
    spin(0.2)


def spin_in_greenlet() -> None:
    spin(0.1)


def switch_into_greenlet() -> None:
    greenlet.greenlet(spin_in_greenlet).switch()


def charged(sampler: CpuSampler, function: str) -> int:
    """Microseconds charged to stacks that pass through ``function``."""
    return sum(us for stack, us in sampler.stacks.items() if f";{function} (" in f";{stack}")


def sampled(*work) -> CpuSampler:
    sampler = CpuSampler(rate=1000)
    sampler.start()
    try:
        for step in work:
            step()
    finally:
        sampler.stop()
    return sampler


def test_cpu_time_is_charged_to_the_code_that_used_it_and_waiting_costs_nothing() -> None:
    used = time.process_time()
    sampler = sampled(spin_long, wait_without_working, spin_short)
    used = (time.process_time() - used) * 1e6
    total = sum(sampler.stacks.values())
    assert 0.7 * used <= total <= 1.05 * used, (total, used)
    long, short = charged(sampler, "spin_long"), charged(sampler, "spin_short")
    assert 1.4 <= long / short <= 2.8, (long, short)
    assert charged(sampler, "wait_without_working") < 0.05 * total
    # collapsed stacks: frames ``function (module.py:line)`` from the root, then microseconds
    lines = sampler.collapsed().splitlines()
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in lines)
    spinning = [line for line in lines if ";spin_long (" in line]
    assert spinning
    assert all(";spin (test_cpu_sampler.py:" in line for line in spinning), spinning[:2]


def test_a_thread_that_works_while_the_main_thread_waits_is_charged_for_it() -> None:
    worker = threading.Thread(target=spin_in_thread)

    def main_waits() -> None:
        worker.start()
        while worker.is_alive():
            time.sleep(0.01)

    sampler = sampled(main_waits)
    total = sum(sampler.stacks.values())
    assert charged(sampler, "spin_in_thread") >= 0.8 * total, sampler.collapsed()[:2000]


def test_work_in_a_greenlet_is_charged_under_the_code_that_switched_into_it() -> None:
    sampler = sampled(switch_into_greenlet)
    inner = [s for s in sampler.stacks if "spin_in_greenlet (" in s]
    assert inner
    assert all("switch_into_greenlet (" in s.split("spin_in_greenlet (")[0] for s in inner)
    assert sum(sampler.stacks[s] for s in inner) >= 0.8 * sum(sampler.stacks.values())
