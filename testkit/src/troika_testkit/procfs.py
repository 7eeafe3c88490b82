"""What Linux's ``/proc`` says about running processes: their CPU time, their memory, and which
carry a given environment variable (children inherit it: a way to find every process a service
started).

The benchmark reads these for the stack's own processes (the services and the embedded
servers), never for itself: its driver and the scripted LLM server are the workload, not the
system under measurement.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["cpu_ms", "peak_rss_mb", "processes_with_env", "rss_mb"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_UTIME, _STIME = 11, 12  # fields 14 and 15 of stat(5), counted after the command's ")"


def _cpu_ms(pid: int) -> float:
    """User plus system CPU time of ``pid``'s threads so far (children it waited for excluded)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[_UTIME]) + int(fields[_STIME])) * 1000 / _TICKS_PER_S


def cpu_ms(pids: Mapping[str, int]) -> dict[str, float]:
    """Each named process's CPU time so far, in milliseconds; 0 for one that is gone."""
    used = {}
    for name, pid in pids.items():
        try:
            used[name] = _cpu_ms(pid)
        except (OSError, ValueError):
            used[name] = 0.0
    return used


def _status_mb(pid: int, key: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    """The process's resident memory now (``VmRSS``), in MiB; 0 once it is gone."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float:
    """The process's resident-memory high-water mark (``VmHWM``), in MiB."""
    return _status_mb(pid, "VmHWM")


def processes_with_env(name: str, value: str) -> list[int]:
    """The processes whose environment holds ``name=value`` (those this user may read)."""
    entry = f"{name}={value}".encode()
    found = []
    for process in Path("/proc").iterdir():
        if process.name.isdigit():
            try:
                if entry in (process / "environ").read_bytes().split(b"\0"):
                    found.append(int(process.name))
            except OSError:
                pass  # gone, or another user's
    return found
