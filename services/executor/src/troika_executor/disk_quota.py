"""The disk quota of a ``run_python`` run: what its scratch folder may hold in all.

Each file is already capped (``RLIMIT_FSIZE``) and, in "namespaces" isolation, each tmpfs cover is
sized; what the code writes into its scratch folder lands on the host's disk, so a loop writing
many files could fill it. While the code runs, the executor measures the folder every
``POLL_S`` and stops the run once it holds more than the files copied in plus the quota. The
measure walks the folder without following a link, a descriptor per level; what it cannot
measure (a folder nested deeper than ``DEEPEST_MEASURED``, one the code made unreadable, more
than ``MOST_ENTRIES`` names) stops the run as well, so nothing can be hidden from it. A run can
go past the quota by what it writes in one interval, at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DEEPEST_MEASURED", "MOST_ENTRIES", "POLL_S", "Overrun", "measure", "watch"]

POLL_S = 0.2
DEEPEST_MEASURED = 256
MOST_ENTRIES = 50_000
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Overrun:
    """Why a run was stopped: a sentence for the person and the model."""

    reason: str


class _Unmeasurable(Exception):
    pass


def measure(folder: Path) -> int:
    """The bytes the files under ``folder`` take on disk (links not followed).

    Raises:
        _Unmeasurable: Part of it cannot be measured (see the module's docstring).
    """
    tally = _Tally()
    levels = [os.open(folder, _FOLDER)]
    try:
        pending = [tally.scan(levels[0])]
        while levels:
            if not pending[-1]:
                os.close(levels.pop())
                pending.pop()
                continue
            name = pending[-1].pop()
            if len(levels) >= DEEPEST_MEASURED:
                raise _Unmeasurable(f"it nested folders more than {DEEPEST_MEASURED} deep")
            try:
                below = os.open(name, _FOLDER, dir_fd=levels[-1])
            except FileNotFoundError:
                continue  # removed meanwhile
            except OSError as exc:
                raise _Unmeasurable("it made a folder the sandbox cannot look into") from exc
            levels.append(below)
            pending.append(tally.scan(below))
    finally:
        for level in levels:
            os.close(level)
    return tally.bytes


@dataclass
class _Tally:
    bytes: int = 0
    entries: int = 0

    def scan(self, folder: int) -> list[str]:
        """Adds the sizes of ``folder``'s entries; the names of its folders."""
        folders = []
        with os.scandir(folder) as entries:
            for entry in entries:
                self.entries += 1
                if self.entries > MOST_ENTRIES:
                    raise _Unmeasurable(f"it made more than {MOST_ENTRIES:,} files and folders")
                with contextlib.suppress(FileNotFoundError):
                    info = entry.stat(follow_symlinks=False)
                    self.bytes += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        folders.append(entry.name)
        return folders


async def watch(folder: Path, allowed: int, quota_mb: int) -> Overrun:
    """Returns once ``folder`` holds more than ``allowed`` bytes, or cannot be measured (run
    as a task beside the run, and cancelled when the run ends)."""
    while True:
        await asyncio.sleep(POLL_S)
        try:
            used = await asyncio.to_thread(measure, folder)
        except _Unmeasurable as exc:
            return Overrun(f"stopped: {exc}")
        except FileNotFoundError:
            continue  # "basic" isolation lets the code remove its own folder
        except OSError:
            return Overrun("stopped: it made its folder one the sandbox cannot look into")
        if used > allowed:
            return Overrun(f"stopped: the program wrote more than its {quota_mb} MB of disk")
