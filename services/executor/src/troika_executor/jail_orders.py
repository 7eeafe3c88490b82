"""What the executor and the jail agree on: a run's limits and the orders sent on the jail's stdin.

Both sides import this module, the jail before it confines the code: it must load nothing but
the standard library, so that the jail starts fast (see ``troika_executor.jail``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

__all__ = ["BASIC", "MIB", "NAMESPACES", "Orders", "SandboxLimits"]

NAMESPACES = "namespaces"
BASIC = "basic"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one run may use.

    Attributes:
        timeout_s: Wall-clock seconds; after them the whole process tree is killed.
        cpu_s: CPU seconds (``RLIMIT_CPU``): ``SIGXCPU`` at the limit, ``SIGKILL`` a second later.
        memory_mb: Address space of each process (``RLIMIT_AS``); beyond it allocations fail
            with ``MemoryError``.
        file_mb: Largest file the code may write (``RLIMIT_FSIZE``); beyond it writes fail with
            ``EFBIG``. Also the size of each covered tmpfs in "namespaces" isolation.
        processes: Processes of the run's uid (``RLIMIT_NPROC``); only meaningful when the
            executor runs as root (a uid per run) or in a user namespace.
        open_files: Open file descriptors per process (``RLIMIT_NOFILE``).
        output_chars: Characters of stdout, and separately of stderr, that are kept.
        copy_in_mb: Largest total of workspace files copied in (and of files copied back).
        disk_mb: What the run may write to disk in all, beyond the files copied in; past it
            the run is stopped (``troika_executor.disk_quota``).
    """

    timeout_s: float = 30.0
    cpu_s: int = 30
    memory_mb: int = 1024
    file_mb: int = 64
    processes: int = 32
    open_files: int = 256
    output_chars: int = 20_000
    copy_in_mb: int = 200
    disk_mb: int = 256

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be positive")


@dataclass(frozen=True, slots=True)
class Orders:
    """What the executor tells the jail, as JSON on its stdin."""

    code: str
    limits: SandboxLimits
    uid: int | None  # the uid to run as; None when the executor is not root
    isolation: str  # NAMESPACES or BASIC
    data_dir: str
    scratch: str
    ready_fd: int  # the jail writes one byte here once the code is confined

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Orders:
        fields = json.loads(raw)
        fields["limits"] = SandboxLimits(**fields["limits"])
        return cls(**fields)
