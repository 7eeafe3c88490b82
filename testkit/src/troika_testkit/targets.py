"""The benchmark's targets, stated relative to the machine's speed so that they hold anywhere.

``C`` is ``calibration_ms``, the CPU time of a fixed pure-Python loop on the machine that ran
the benchmark. A time is compared as a fraction of ``C``, a rate as tasks per ``1000 / C``
seconds; memory and the replica comparison need no calibration.

==============================  =================================  ==================
figure                          bound                              databases
==============================  =================================  ==================
``cpu_ms_per_task``             ``value / C <= 0.1``               postgres
``tasks_per_s_conc20``          ``value * C / 1000 >= 10``         each
``seq_step_overhead_ms_p50``    ``value / C <= 0.004``             each
``seq_step_overhead_ms_p99``    ``value / C <= 0.015``             each
``pending_1000_rss_growth_mb``  ``value < 50``                     each
``tasks_per_s_2_replicas``      ``>= tasks_per_s`` (one replica)   the default
==============================  =================================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DATABASES", "targets"]

DATABASES = ("sqlite", "postgres")


@dataclass(frozen=True)
class _Bound:
    figure: str
    bound: float
    at_least: bool = False  # else at most
    rate: bool = False  # compared as value * C / 1000, else as value / C
    calibrated: bool = True
    strict: bool = False
    databases: tuple[str, ...] = DATABASES

    def rule(self) -> str:
        sign = (">" if self.at_least else "<") + ("" if self.strict else "=")
        if not self.calibrated:
            return f"{self.figure} {sign} {self.bound:g}"
        ratio = "* calibration_ms / 1000" if self.rate else "/ calibration_ms"
        return f"{self.figure} {ratio} {sign} {self.bound:g}"

    def judge(self, value: float, calibration: float) -> dict[str, Any]:
        if not self.calibrated:
            ratio, limit = value, self.bound
        elif self.rate:
            ratio, limit = value * calibration / 1000, self.bound * 1000 / calibration
        else:
            ratio, limit = value / calibration, self.bound * calibration
        if self.at_least:
            met = ratio > self.bound if self.strict else ratio >= self.bound
        else:
            met = ratio < self.bound if self.strict else ratio <= self.bound
        judged: dict[str, Any] = {"rule": self.rule(), "value": value}
        if self.calibrated:
            judged["ratio"] = round(ratio, 4)
        return judged | {"limit": round(limit, 3), "met": met}


_BOUNDS = (
    _Bound("cpu_ms_per_task", 0.1, databases=("postgres",)),
    _Bound("tasks_per_s_conc20", 10.0, at_least=True, rate=True),
    _Bound("seq_step_overhead_ms_p50", 0.004),
    _Bound("seq_step_overhead_ms_p99", 0.015),
    _Bound("pending_1000_rss_growth_mb", 50.0, calibrated=False, strict=True),
)


def targets(
    calibration: float,
    sections: Mapping[str, Mapping[str, Any]],
    replicas: tuple[float, float],
) -> dict[str, dict[str, Any]]:
    """Each target with its value, its limit on this machine and whether it is met.

    Args:
        calibration: ``calibration_ms``.
        sections: The figures measured per database (``sqlite``, ``postgres``); a database
            left out gives its targets ``met: null``.
        replicas: ``tasks_per_s`` with one and with two processes per agent service.

    Returns:
        ``{figure}_{database}`` (and ``tasks_per_s_2_replicas``) to ``rule``, ``value``,
        ``ratio`` (the value as the rule compares it), ``limit`` and ``met``.
    """
    judged: dict[str, dict[str, Any]] = {}
    for bound in _BOUNDS:
        for database in bound.databases:
            name = f"{bound.figure}_{database}"
            figures = sections.get(database)
            if figures is None:
                judged[name] = {
                    "rule": bound.rule(),
                    "value": None,
                    "met": None,
                    "note": f"{database} was not measured",
                }
            else:
                judged[name] = bound.judge(float(figures[bound.figure]), calibration)
    one, two = replicas
    judged["tasks_per_s_2_replicas"] = {
        "rule": "tasks_per_s_2_replicas >= tasks_per_s",
        "value": round(two, 3),
        "limit": round(one, 3),
        "met": two >= one,
    }
    return judged
