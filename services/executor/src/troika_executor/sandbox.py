"""Runs untrusted Python for the ``run_python`` tool, in a jail the code cannot leave.

The executor copies the task's visible files into a scratch folder and starts the *jail*
(``troika_executor.jail``) as a fresh interpreter, which reads its orders on stdin, confines
itself, then runs the code. Two kinds of isolation, chosen once per machine by a probe:

``namespaces``
    The jail enters new network, mount, pid, IPC and UTS namespaces, where a pid 1 of its own
    forks the code. The network has only a loopback interface, left down, so every connection
    fails; a fresh ``/proc`` shows the code's own processes only; the data directory, ``/tmp``,
    ``/var/tmp``, ``/dev/shm`` and ``/run`` are covered by empty tmpfs mounts (the scratch
    folder is bound back in place). Killing pid 1 kills every process in the namespace,
    including those that left the process group with ``setsid()``.
    Every mount of the host is read-only there: the code writes only to its scratch folder and
    the tmpfs covers, whatever its uid may write on the host. When the executor does not run as
    root, the executor user's home folder is covered too (its keys and settings).
``basic``
    An audit hook refuses sockets, new processes, signals, ``ctypes``, access to the data
    directory and other processes' ``/proc`` entries, and writes outside the scratch folder
    (see ``troika_executor.jail_guard``). Audit hooks are not a security boundary: this is a
    fallback that stops ordinary code and plain attempts, not a determined attacker. Native
    libraries (pyarrow, polars, h5py, sqlite's ``ATTACH``) open files without an audit event,
    and a path object whose conversion the code controls can show the guard one path and the
    system another. Where the executor runs as root, the code's uid of its own is the real
    barrier: the sandbox takes the other users' access to the data directory away. Where it
    does not, the code runs as the executor's own user, with the guard alone in its way.

``mode="auto"`` uses namespaces where the machine allows them; where it does not, only an
executor running as root falls back to "basic" (with a warning), for the reason above. An
unprivileged executor refuses ``run_python`` instead (``SandboxUnavailable``, whose message
says what the operator can do): "basic" must be asked for by name.

In both, resource limits bound CPU time, address space, file size, processes and open files;
when the executor runs as root the code runs under a uid of its own (one per concurrent run, so
runs never share a process count), and a wall-clock timeout kills the whole process tree.
Regular files the code creates or changes are copied back into the workspace afterwards, once
every process of the run is gone (at most ``MOST_FILES`` files, ``copy_in_mb`` in all, none
deeper than ``DEEPEST`` folders); files it deletes stay in the workspace. The scratch folder is
then removed, however deep or wide the code made it.

This module is the executor's side: copying in and out, starting the jail, draining its output,
and killing what is left. What runs inside the jail is in ``troika_executor.jail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from troika_executor import disk_quota
from troika_executor import sandbox_processes as processes
from troika_executor.jail_orders import BASIC, MIB, NAMESPACES, Orders, SandboxLimits
from troika_executor.sandbox_errors import (
    JailFailed,
    ProcessesLeft,
    SandboxError,
    SandboxUnavailable,
    WorkspaceTooLarge,
)
from troika_executor.scratch import (
    DEEPEST,
    MOST_FILES,
    copy_in,
    copy_out,
    make_scratch,
    remove_tree,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from troika_executor.workspace import Workspace

__all__ = [
    "DEEPEST",
    "DEFAULT_LIMITS",
    "MOST_FILES",
    "JailFailed",
    "ProcessesLeft",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxRun",
    "SandboxUnavailable",
    "WorkspaceTooLarge",
]

log = structlog.get_logger("troika.executor.sandbox")

# How the jail starts: isolated mode (no PYTHON* variables, user site-packages or working folder
# on sys.path) and no bytecode written.
_JAIL = (sys.executable, "-I", "-B", "-m", "troika_executor.jail")
_SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"
_SLOT_POLL_S = 0.05  # every uid is taken by other executors on this host: look again after this
_NEEDS_NAMESPACES = (
    "run_python needs Linux namespaces (unprivileged user namespaces) or an executor running "
    "as root, and this machine allows neither; set TROIKA_SANDBOX=basic to accept weaker "
    "isolation"
)
_NO_NAMESPACES = (
    "run_python must run in Linux namespaces (TROIKA_SANDBOX=namespaces), and this machine "
    "refuses to create them"
)


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True, slots=True)
class SandboxRun:
    """What came of one run.

    Attributes:
        exit_code: The code's exit status; ``None`` when a signal ended it (the timeout included).
        stdout: Its standard output, cut to ``output_chars`` with a ``[truncated: …]`` marker.
        stderr: Its standard error, the same way, followed by notes on files not copied back.
        timed_out: The wall-clock timeout expired and the process tree was killed.
        signal: The signal that ended it (``"SIGKILL"`` on timeout or past the disk quota,
            ``"SIGXCPU"`` past the CPU limit), else ``None``.
        overrun: Why the executor stopped it before its time (its disk quota), else ``None``.
        changed_files: Workspace-relative paths the code created or modified, copied back.
        isolation: ``"namespaces"`` or ``"basic"``.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    signal: str | None
    changed_files: tuple[str, ...]
    isolation: str
    overrun: str | None = None


class Sandbox:
    """Runs Python code against a copy of a task's folder, in a jail.

    Args:
        data_dir: The shared data directory; the code never sees it.
        uid_base: First uid of the range the code runs under when the executor is root.
        slots: How many runs at once (and uids in the range).
        mode: ``"auto"`` (namespaces where possible, else "basic" for a root executor only),
            ``"namespaces"`` or ``"basic"``.

    Raises:
        ValueError: An unknown mode, no slots, or the root folder as data directory.
    """

    def __init__(
        self, data_dir: Path, *, uid_base: int = 61_000, slots: int = 16, mode: str = "auto"
    ) -> None:
        if mode not in ("auto", NAMESPACES, BASIC):
            raise ValueError(f"unknown sandbox mode {mode!r}")
        if slots < 1 or uid_base < 1:
            raise ValueError("a sandbox needs at least one slot and a uid range above 0")
        self.data_dir = data_dir.resolve()
        if self.data_dir == Path("/"):
            raise ValueError("the data directory cannot be the root folder")
        self._uid_base = uid_base
        self._slots = slots
        self._mode = mode
        self._isolation: str | None = None
        self._refusal: str | None = None
        self._probe_lock = threading.Lock()
        self._concurrency = asyncio.Semaphore(slots)
        self._privileged = os.geteuid() == 0

    @property
    def isolation(self) -> str:
        """``"namespaces"`` or ``"basic"``: what the code runs in on this machine.

        Settled once, on first use: a child process probes whether namespaces can be built.

        Raises:
            SandboxUnavailable: The isolation asked for cannot be had here; its message says
                what the operator can do.
        """
        with self._probe_lock:
            if self._isolation is None and self._refusal is None:
                self._settle()
            if self._isolation is None:
                raise SandboxUnavailable(self._refusal or _NEEDS_NAMESPACES)
            return self._isolation

    def check(self) -> str | None:
        """Settles the isolation now (at the executor's start), so that the log says at once
        what ``run_python`` gets: the isolation, or ``None`` when it will be refused."""
        try:
            return self.isolation
        except SandboxUnavailable:
            return None

    def _settle(self) -> None:
        if self._mode == BASIC:
            isolation = BASIC
        elif _namespaces_work():
            isolation = NAMESPACES
        elif self._mode == NAMESPACES or not self._privileged:
            # Without root, "basic" would run the code as the executor's own user behind an
            # audit hook alone: never without the operator asking for it by name.
            self._refusal = _NO_NAMESPACES if self._mode == NAMESPACES else _NEEDS_NAMESPACES
            log.error("sandbox.unavailable", mode=self._mode, reason=self._refusal)
            return
        else:
            isolation = BASIC
        if isolation == BASIC:
            log.warning(
                "sandbox.basic_isolation",
                mode=self._mode,
                uid_per_run=self._privileged,
                note="an audit hook is a fallback, not a security boundary",
            )
            if self._privileged:
                _seal(self.data_dir, range(self._uid_base, self._uid_base + self._slots))
        self._isolation = isolation
        log.info("sandbox.probed", isolation=isolation)

    async def run(
        self, workspace: Workspace, code: str, limits: SandboxLimits = DEFAULT_LIMITS
    ) -> SandboxRun:
        """Runs ``code`` as ``__main__`` in a copy of ``workspace`` and copies its files back.

        Cancelling the call kills the code's whole process tree.

        Args:
            workspace: The task's folder; its hidden files are never copied in.
            code: Python source.
            limits: What the run may use.

        Returns:
            The exit status, output and changed files.

        Raises:
            WorkspaceTooLarge: The visible files exceed ``limits.copy_in_mb``.
            JailFailed: The jail could not confine the code.
            SandboxUnavailable: The isolation asked for cannot be had on this machine.
            ProcessesLeft: The run's processes could not be killed; nothing was copied back.
        """
        isolation = await asyncio.to_thread(lambda: self.isolation)
        started = time.monotonic()
        async with self._slot() as uid:
            # Made here, not in a thread: a cancelled await would leave the folder behind.
            scratch = make_scratch(uid)
            try:
                limit = limits.copy_in_mb * MIB
                copied = await asyncio.to_thread(copy_in, workspace, scratch, limit, uid)
                allowed = await asyncio.to_thread(disk_quota.measure, scratch)
                allowed += limits.disk_mb * MIB
                ended = await self._execute(scratch, code, limits, uid, isolation, allowed=allowed)
                changed, notes = await asyncio.to_thread(
                    copy_out, workspace, scratch, copied, limit
                )
            finally:
                # Submitted at once and shielded: a cancelled task would otherwise drop the
                # removal before a thread picked it up.
                loop = asyncio.get_running_loop()
                await asyncio.shield(loop.run_in_executor(None, remove_tree, scratch))
        log.info(
            "sandbox.ran",
            isolation=isolation,
            exit_code=ended.exit_code,
            signal=ended.signal,
            timed_out=ended.timed_out,
            changed=len(changed),
            seconds=round(time.monotonic() - started, 3),
        )
        notes_text = "".join(f"\n[not copied back: {note}]" for note in notes)
        return dataclasses.replace(ended, stderr=ended.stderr + notes_text, changed_files=changed)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[int | None]:
        """A uid no other run on this host uses meanwhile (``None`` when not root)."""
        async with self._concurrency:
            if not self._privileged:
                yield None
                return
            # A lock file per uid, so executors sharing the host never share a uid either. Claimed
            # here, not in a thread: a cancelled await would leak the lock (it takes microseconds).
            while (claim := self._claim()) is None:  # noqa: ASYNC110 - held by other processes
                await asyncio.sleep(_SLOT_POLL_S)
            uid, lock = claim
            try:
                await asyncio.to_thread(processes.sweep, uid)  # left by an executor that crashed
                yield uid
            finally:
                processes.kill_uid(uid)  # at once, even if the clean-up's awaits were cancelled
                os.close(lock)

    def _claim(self) -> tuple[int, int] | None:
        # The uids are the host's, whatever the data directory: so are their locks (in the
        # host's lock folder, where it has one).
        shared = Path("/run/lock")
        base = shared if shared.is_dir() and os.access(shared, os.W_OK) else None
        folder = (base or Path(tempfile.gettempdir())) / "troika-sandbox-uids"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.is_symlink() or folder.stat().st_uid != os.geteuid():
            raise SandboxUnavailable(f"{folder} is not this executor's own folder")
        for index in range(self._slots):
            uid = self._uid_base + index
            lock = os.open(folder / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            return uid, lock
        return None

    async def _execute(
        self,
        scratch: Path,
        code: str,
        limits: SandboxLimits,
        uid: int | None,
        isolation: str,
        *,
        allowed: int,
    ) -> SandboxRun:
        """Starts the jail and waits for it, stopping it past ``allowed`` bytes in ``scratch``;
        the run, with no files copied back yet."""
        ready_read, ready_write = os.pipe()
        orders = Orders(
            code=code,
            limits=limits,
            uid=uid,
            isolation=isolation,
            data_dir=str(self.data_dir),
            scratch=str(scratch),
            ready_fd=ready_write,
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *_JAIL,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=scratch,
                env=_environment(scratch),
                start_new_session=True,
                close_fds=True,
                pass_fds=(ready_write,),
            )
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        stdout = processes.Capture(limits.output_chars)
        stderr = processes.Capture(limits.output_chars)
        readers = (
            asyncio.ensure_future(processes.drain(process.stdout, stdout)),
            asyncio.ensure_future(processes.drain(process.stderr, stderr)),
        )
        timed_out = False
        overrun: disk_quota.Overrun | None = None
        watcher = asyncio.ensure_future(disk_quota.watch(scratch, allowed, limits.disk_mb))
        try:
            async with asyncio.timeout(limits.timeout_s):
                await processes.send(process, orders.encode())
                ending = asyncio.ensure_future(_ended(process, readers))
                await asyncio.wait((ending, watcher), return_when=asyncio.FIRST_COMPLETED)
                if watcher.done():
                    overrun = watcher.result()
                    ending.cancel()
                await asyncio.gather(ending, return_exceptions=overrun is not None)
        except TimeoutError:
            timed_out = True
        finally:
            watcher.cancel()
            try:
                await processes.stop(process, uid)
                await processes.settle(readers)
            finally:
                ready = processes.was_ready(ready_read)
        if not ready and not timed_out and overrun is None:
            raise JailFailed(stderr.text())
        returncode = process.returncode
        if timed_out or overrun is not None or returncode is None:
            exit_code, ended_by = None, "SIGKILL"
        elif returncode < 0:
            exit_code, ended_by = None, processes.signal_name(-returncode)
        else:
            exit_code, ended_by = returncode, None
        return SandboxRun(
            exit_code=exit_code,
            stdout=stdout.text(),
            stderr=stderr.text(),
            timed_out=timed_out,
            signal=ended_by,
            changed_files=(),
            isolation=isolation,
            overrun=overrun.reason if overrun is not None else None,
        )


async def _ended(
    process: asyncio.subprocess.Process, readers: Iterable[asyncio.Future[None]]
) -> None:
    """Returns once the jail has exited and its output is read."""
    await process.wait()
    await asyncio.wait(readers)


def _environment(scratch: Path) -> dict[str, str]:
    """The code's whole environment: nothing of the executor's own."""
    home = str(scratch)
    return {
        "PATH": _SEARCH_PATH,
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "TMPDIR": home,
    }


def _namespaces_work() -> bool:
    """Whether a child jail manages to build its namespaces on this machine."""
    try:
        probe = subprocess.run(  # noqa: S603 - this interpreter, the jail module, fixed arguments
            [*_JAIL, "--probe"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={"PATH": _SEARCH_PATH, "LANG": "C.UTF-8"},
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _seal(data_dir: Path, gids: range) -> None:
    """Takes the run uids' way into the data directory: in "basic" isolation the uid's own
    permissions are what keeps the code out. Each run has no group but its own gid, so only
    "other" access matters (and "group", where the folder's group is one of the run gids)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (data_dir, data_dir / "workspaces"):
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        sealed = mode & ~stat.S_IRWXO
        if info.st_gid in gids:
            sealed &= ~stat.S_IRWXG
        if sealed != mode:
            folder.chmod(sealed)
            log.warning(
                "sandbox.data_dir_sealed", folder=str(folder), mode=oct(sealed), was=oct(mode)
            )
