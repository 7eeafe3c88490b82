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
    (see ``troika_executor.jail._guard``). Audit hooks are not a security boundary: this is a
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
import codecs
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import secrets
import signal
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
from troika_executor.jail_orders import BASIC, MIB, NAMESPACES, Orders, SandboxLimits
from troika_executor.workspace import OutsideWorkspace
from troika_shared.errors import PermanentError

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
_REAP_GRACE_S = 2.0  # for the jail to follow its killed child before its group is killed too
_DRAIN_GRACE_S = 2.0  # for the output pipes to close once the processes are dead
_SLOT_POLL_S = 0.05  # every uid is taken by other executors on this host: look again after this
_SWEEP_S = 5.0  # for the processes of a run's uid to die once killed
MOST_FILES = 500  # files one run copies back into the workspace
DEEPEST = 32  # folder levels below the scratch folder that copying back looks into
_MOST_ENTRIES = 20_000  # names in the scratch folder copying back looks at, in all
_MOST_NOTES = 20  # notes on files not copied back, before "and N more"
_REMOVAL_DEPTH = 64  # folders held open at once while removing; deeper ones are moved up first
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEEDS_NAMESPACES = (
    "run_python needs Linux namespaces (unprivileged user namespaces) or an executor running "
    "as root, and this machine allows neither; set TROIKA_SANDBOX=basic to accept weaker "
    "isolation"
)
_NO_NAMESPACES = (
    "run_python must run in Linux namespaces (TROIKA_SANDBOX=namespaces), and this machine "
    "refuses to create them"
)


class SandboxError(PermanentError):
    """The sandbox could not run the code at all (the code's own failures are in its result)."""


class WorkspaceTooLarge(SandboxError):
    """The workspace's files are more than a run may copy in.

    Attributes:
        size_bytes: The total size of the visible files.
        limit_bytes: The most a run copies in.
    """

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"the task's files take {size_bytes / MIB:.1f} MB, "
            f"more than the {limit_bytes / MIB:.0f} MB the code may be given"
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class SandboxUnavailable(SandboxError):
    """The isolation the operator asked for cannot be had here: ``run_python`` is refused.

    Attributes:
        reason: What is missing, and what the operator can do about it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProcessesLeft(SandboxError):
    """Processes of a run's uid outlived every SIGKILL: nothing is copied back.

    Attributes:
        uid: The run's uid.
        count: How many were still there.
    """

    def __init__(self, uid: int, count: int) -> None:
        super().__init__(
            f"{count} processes of the sandbox's uid {uid} could not be killed; "
            "the run's files were not copied back"
        )
        self.uid = uid
        self.count = count


class JailFailed(SandboxError):
    """The jail died before the code started: it could not confine it.

    Attributes:
        detail: What the jail wrote on its standard error.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"the sandbox could not start the code: {detail.strip()[-2000:]}")
        self.detail = detail


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


@dataclass(frozen=True, slots=True)
class _Copied:
    """A file as it was copied in, to tell afterwards whether the code changed it."""

    size: int
    mtime_ns: int
    inode: int
    digest: str


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
            scratch = _make_scratch(uid)
            try:
                limit = limits.copy_in_mb * MIB
                copied = await asyncio.to_thread(_copy_in, workspace, scratch, limit, uid)
                allowed = await asyncio.to_thread(disk_quota.measure, scratch)
                allowed += limits.disk_mb * MIB
                ended = await self._execute(scratch, code, limits, uid, isolation, allowed=allowed)
                changed, notes = await asyncio.to_thread(
                    _copy_out, workspace, scratch, copied, limit
                )
            finally:
                # Submitted at once and shielded: a cancelled task would otherwise drop the
                # removal before a thread picked it up.
                loop = asyncio.get_running_loop()
                await asyncio.shield(loop.run_in_executor(None, _remove_tree, scratch))
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
                await asyncio.to_thread(_sweep, uid)  # left by an executor that crashed
                yield uid
            finally:
                _kill_uid(uid)  # at once, even if the clean-up's awaits were cancelled
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
        stdout, stderr = _Capture(limits.output_chars), _Capture(limits.output_chars)
        readers = (
            asyncio.ensure_future(_drain(process.stdout, stdout)),
            asyncio.ensure_future(_drain(process.stderr, stderr)),
        )
        timed_out = False
        overrun: disk_quota.Overrun | None = None
        watcher = asyncio.ensure_future(disk_quota.watch(scratch, allowed, limits.disk_mb))
        try:
            async with asyncio.timeout(limits.timeout_s):
                await _send(process, orders.encode())
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
                await _stop(process, uid)
                await _settle(readers)
            finally:
                ready = _was_ready(ready_read)
        if not ready and not timed_out and overrun is None:
            raise JailFailed(stderr.text())
        returncode = process.returncode
        if timed_out or overrun is not None or returncode is None:
            exit_code, ended_by = None, "SIGKILL"
        elif returncode < 0:
            exit_code, ended_by = None, _signal_name(-returncode)
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


def _make_scratch(uid: int | None) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="troika-sandbox-")).resolve()
    scratch.chmod(0o700)
    if uid is not None:
        os.chown(scratch, uid, uid)
    return scratch


def _copy_in(
    workspace: Workspace, scratch: Path, limit: int, uid: int | None
) -> dict[str, _Copied]:
    """Copies the visible regular files (no links) into ``scratch``; what each was like."""
    root = workspace.root
    sources: list[tuple[str, Path]] = []
    total = 0
    for relative in workspace.files():
        source = root / relative
        # Refuse links anywhere along the path: the copy must not read outside the workspace.
        if os.path.realpath(source) != str(source) or not source.is_file():
            continue
        total += source.lstat().st_size
        sources.append((relative, source))
    if total > limit:
        raise WorkspaceTooLarge(total, limit)
    copied: dict[str, _Copied] = {}
    for relative, source in sources:
        target = scratch / relative
        _make_parents(scratch, target.parent, uid)
        digest = hashlib.sha256()
        with open(
            source, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NOFOLLOW)
        ) as reader:
            info = os.fstat(reader.fileno())
            if not stat.S_ISREG(info.st_mode):
                continue
            with target.open("xb") as writer:
                while chunk := reader.read(MIB):
                    digest.update(chunk)
                    writer.write(chunk)
                if uid is not None:
                    os.fchown(writer.fileno(), uid, uid)
        # The source's times: any later write by the code changes the copy's mtime.
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
        now = target.lstat()
        copied[relative] = _Copied(now.st_size, now.st_mtime_ns, now.st_ino, digest.hexdigest())
    return copied


def _make_parents(scratch: Path, folder: Path, uid: int | None) -> None:
    missing = []
    while folder != scratch and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(mode=0o755)
        if uid is not None:
            os.chown(each, uid, uid)


def _copy_out(
    workspace: Workspace, scratch: Path, copied: dict[str, _Copied], limit: int
) -> tuple[tuple[str, ...], list[str]]:
    """Copies new and changed regular files back; the paths copied, and notes on those refused.

    The run's processes are gone by now; still, nothing here follows a link: each folder is
    opened from its parent's descriptor with ``O_NOFOLLOW``, and so is each file.
    """
    back = _CopyBack(workspace, copied, limit)
    top = os.open(scratch, _FOLDER)
    try:
        back.walk(top)
    finally:
        os.close(top)
    return tuple(back.changed), back.notes()


class _CopyBack:
    """One copy back: what was copied, and what was not and why, within the bounds."""

    def __init__(self, workspace: Workspace, copied: dict[str, _Copied], limit: int) -> None:
        self._workspace = workspace
        self._copied = copied
        self._limit = limit
        self.changed: list[str] = []
        self._total = 0
        self._seen = 0
        self._notes: list[str] = []
        self._unnoted = 0
        self._left = 0  # new or changed files past MOST_FILES

    def walk(self, top: int) -> None:
        """Depth first, in name order: a folder's files, then its folders (no recursion)."""
        # Each level: its descriptor, its path below the scratch folder, its folders still to do.
        levels = [(top, "", self._read(top, ""))]
        try:
            while levels and self._seen <= _MOST_ENTRIES:
                folder, prefix, todo = levels[-1]
                if not todo:
                    levels.pop()
                    if levels:
                        os.close(folder)
                    continue
                name = todo.pop()
                relative = prefix + name
                if len(levels) > DEEPEST:
                    self._note(f"{relative}/: more than {DEEPEST} folders deep")
                    continue
                try:
                    below = os.open(name, _FOLDER, dir_fd=folder)
                except OSError as error:
                    self._note(f"{relative}/: {error.strerror or error}")
                    continue
                try:
                    inside = self._read(below, relative + "/")
                except OSError as error:
                    os.close(below)
                    self._note(f"{relative}/: {error.strerror or error}")
                    continue
                levels.append((below, relative + "/", inside))
        finally:
            for folder, _, _ in levels[1:]:
                os.close(folder)
        if self._seen > _MOST_ENTRIES:
            self._note(f"the rest: the code left more than {_MOST_ENTRIES} files and folders")

    def _read(self, folder: int, prefix: str) -> list[str]:
        """Copies the folder's files back; its folders to look into, last first."""
        names = []
        with os.scandir(folder) as entries:
            for entry in entries:
                self._seen += 1
                if self._seen > _MOST_ENTRIES:
                    break
                if not entry.name.startswith("."):
                    names.append(entry.name)
        folders = []
        for name in sorted(names):
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if name != "__pycache__":
                    folders.append(name)
            elif stat.S_ISREG(info.st_mode):
                self._file(folder, name, prefix + name, info)
        folders.reverse()
        return folders

    def _file(self, folder: int, name: str, relative: str, info: os.stat_result) -> None:
        before = self._copied.get(relative)
        if before is not None and (info.st_size, info.st_mtime_ns, info.st_ino) == (
            before.size,
            before.mtime_ns,
            before.inode,
        ):
            return
        if len(self.changed) >= MOST_FILES:
            self._left += 1
            return
        try:
            relative.encode("utf-8")
            target = self._workspace.path(relative)
            if self._total + info.st_size > self._limit:
                self._note(f"{relative}: more than {self._limit // MIB} MB of files in all")
                return
            size = _copy_file(folder, name, info, before, target)
        except (OutsideWorkspace, UnicodeEncodeError) as refused:
            self._note(f"{relative!r}: {refused}")
            return
        except OSError as error:
            self._note(f"{relative}: {error.strerror or error}")
            return
        if size is not None:
            self._total += size
            self.changed.append(relative)

    def _note(self, note: str) -> None:
        if len(self._notes) < _MOST_NOTES:
            self._notes.append(note)
        else:
            self._unnoted += 1

    def notes(self) -> list[str]:
        """The notes, with what was left over from the bounds."""
        notes = list(self._notes)
        if self._left:
            notes.append(
                f"{self._left} more new or changed files: a run copies back at most {MOST_FILES}"
            )
        if self._unnoted:
            notes.append(f"{self._unnoted} more files or folders")
        return notes


def _copy_file(
    folder: int, name: str, info: os.stat_result, before: _Copied | None, target: Path
) -> int | None:
    """Copies the file into the workspace if it changed; its size, or ``None`` if it did not.

    Opened without following a link, and only if it is still the file that was looked at.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    reader = os.open(name, flags, dir_fd=folder)
    try:
        opened = os.fstat(reader)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            info.st_dev,
            info.st_ino,
        ):
            raise OSError(errno.ESTALE, "it changed while it was being copied")
        if before is not None and opened.st_size == before.size:
            digest = hashlib.sha256()
            while chunk := os.read(reader, MIB):
                digest.update(chunk)
            if digest.hexdigest() == before.digest:
                return None
            os.lseek(reader, 0, os.SEEK_SET)
        _write_back(reader, target)
        return opened.st_size
    finally:
        os.close(reader)


def _write_back(reader: int, target: Path) -> None:
    """Writes the file into the workspace atomically: a crash leaves the old one or the new."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    try:
        with partial.open("wb") as writer:
            while chunk := os.read(reader, MIB):
                writer.write(chunk)
        partial.replace(target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


def _remove_tree(folder: Path) -> None:
    """Removes the scratch folder, however deep or wide, whatever permissions the code left."""
    if not os.path.lexists(folder):
        return  # the code removed it itself ("basic" isolation allows that)
    try:
        _remove(folder)
    except OSError as error:
        log.warning("sandbox.scratch_removal_retried", folder=str(folder), error=str(error))
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(  # noqa: S603 - a fixed program on the sandbox's own folder
                ["rm", "-rf", "--", str(folder)],  # noqa: S607 - rm from the system's PATH
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=600,
                check=False,
            )
    if os.path.lexists(folder):
        log.error("sandbox.scratch_left", folder=str(folder))


def _remove(folder: Path) -> None:
    parent = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        top = _open_to_remove(parent, folder.name)
        try:
            _empty(top)
        finally:
            os.close(top)
        os.rmdir(folder.name, dir_fd=parent)
    finally:
        os.close(parent)


def _empty(top: int) -> None:
    """Removes everything in the folder ``top``, depth first, with no recursion and no link
    followed: one descriptor a level, and a folder deeper than ``_REMOVAL_DEPTH`` is first
    moved up into ``top`` (so any depth takes a bounded number of descriptors)."""
    levels: list[tuple[int, str, list[str]]] = [(top, "", _clear_files(top))]
    try:
        while levels:
            folder, name, todo = levels[-1]
            if not todo:
                todo.extend(_clear_files(folder))  # folders moved up here meanwhile
            if not todo:
                levels.pop()
                if levels:
                    os.close(folder)
                    os.rmdir(name, dir_fd=levels[-1][0])
                continue
            below = todo.pop()
            if len(levels) >= _REMOVAL_DEPTH:
                os.rename(below, f".deep-{secrets.token_hex(8)}", src_dir_fd=folder, dst_dir_fd=top)
                continue
            opened = _open_to_remove(folder, below)
            levels.append((opened, below, []))  # closed below, whatever happens next
            levels[-1][2].extend(_clear_files(opened))
    finally:
        for folder, _, _ in levels[1:]:
            os.close(folder)


def _clear_files(folder: int) -> list[str]:
    """Unlinks everything in ``folder`` but its folders; their names."""
    os.lseek(folder, 0, os.SEEK_SET)  # os.scandir shares the descriptor's position
    folders = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=folder)
    return folders


def _open_to_remove(parent: int, name: str) -> int:
    """Opens a folder, giving its owner back the permissions the code may have taken away."""
    try:
        folder = os.open(name, _FOLDER, dir_fd=parent)
    except PermissionError:
        # Only an unprivileged executor sees this: the folder's owner is itself.
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            Path(f"/proc/self/fd/{handle}").chmod(stat.S_IRWXU)
        finally:
            os.close(handle)
        folder = os.open(name, _FOLDER, dir_fd=parent)
    with contextlib.suppress(OSError):
        os.fchmod(folder, stat.S_IRWXU)  # unlinking needs write permission in the folder
    return folder


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


async def _send(process: asyncio.subprocess.Process, orders: bytes) -> None:
    stdin = process.stdin
    if stdin is None:  # pragma: no cover - the process was started with a pipe
        raise RuntimeError("the jail has no stdin")
    try:
        stdin.write(orders)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the jail died before reading; its stderr says why
    finally:
        stdin.close()


async def _drain(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
    if stream is None:  # pragma: no cover - the process was started with pipes
        return
    while chunk := await stream.read(65_536):
        capture.feed(chunk)


async def _settle(readers: Iterable[asyncio.Future[None]]) -> None:
    pending = [reader for reader in readers if not reader.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=_DRAIN_GRACE_S)
        for reader in late:
            reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def _stop(process: asyncio.subprocess.Process, uid: int | None) -> None:
    """Kills whatever is left of the run and reaps the jail."""
    if process.returncode is None:
        # In "namespaces" isolation the jail's child is pid 1 of the namespace: killing it kills
        # every process there, and the jail reaps it and dies of the same signal.
        children = _children(process.pid)
        for child in children:
            _kill(child)
        try:
            if children:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), _REAP_GRACE_S)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    if uid is not None:
        await asyncio.to_thread(_sweep, uid)


def _was_ready(ready: int) -> bool:
    """Whether the jail said the code was confined and about to start."""
    try:
        os.set_blocking(ready, False)
        return os.read(ready, 1) == b"1"
    except BlockingIOError:
        return False
    finally:
        os.close(ready)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _processes() -> Iterable[tuple[int, str]]:
    """Each process's pid and ``/proc/<pid>/status`` text."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "status").read_text()
            except OSError:
                continue  # it ended meanwhile


def _status_field(status: str, name: str) -> list[str]:
    for line in status.splitlines():
        if line.startswith(f"{name}:"):
            return line.split()[1:]
    return []


def _children(parent: int) -> list[int]:
    return [pid for pid, status in _processes() if _status_field(status, "PPid") == [str(parent)]]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _kill_uid(uid: int) -> int:
    """Sends SIGKILL to each live process of ``uid``; how many there were."""
    found = 0
    for pid, status in _processes():
        uids = _status_field(status, "Uid")
        state = _status_field(status, "State")[:1]
        if str(uid) in uids[:2] and state not in (["Z"], ["X"]):
            _kill(pid)
            found += 1
    return found


def _sweep(uid: int) -> None:
    """Kills the processes of ``uid`` until none is left (a killed process takes a moment).

    Raises:
        ProcessesLeft: Some outlived ``_SWEEP_S`` of it: the run must not go on as if they had not.
    """
    deadline = time.monotonic() + _SWEEP_S
    while left := _kill_uid(uid):
        if time.monotonic() > deadline:
            log.error("sandbox.processes_left", uid=uid, processes=left)
            raise ProcessesLeft(uid, left)
        time.sleep(0.01)


class _Capture:
    """Keeps the first ``limit`` characters of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: list[str] = []
        self._size = 0
        self._dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text: str | None = None

    def feed(self, data: bytes, *, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
        room = self._limit - self._size
        if room > 0:
            kept = text[:room]
            self._kept.append(kept)
            self._size += len(kept)
            text = text[room:]
        self._dropped += len(text)

    def text(self) -> str:
        if self._text is None:
            self.feed(b"", final=True)
            self._text = "".join(self._kept)
            if self._dropped:
                self._text += f"\n[truncated: {self._dropped} more characters]"
        return self._text
