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
``basic``
    Where namespaces cannot be created, an audit hook refuses sockets, new processes, signals,
    ``ctypes``, access to the data directory and other processes' ``/proc`` entries, and writes
    outside the scratch folder. Audit hooks are not a security boundary: this is a fallback that
    stops ordinary code and plain attempts, not a determined attacker.

In both, resource limits bound CPU time, address space, file size, processes and open files;
when the executor runs as root the code runs under a uid of its own (one per concurrent run, so
runs never share a process count), and a wall-clock timeout kills the whole process tree.
Regular files the code creates or changes are copied back into the workspace afterwards; files
it deletes stay in the workspace.

This module is the executor's side: copying in and out, starting the jail, draining its output,
and killing what is left. What runs inside the jail is in ``troika_executor.jail``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
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

from troika_executor.jail_orders import BASIC, MIB, NAMESPACES, Orders, SandboxLimits
from troika_executor.workspace import OutsideWorkspace
from troika_shared.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from troika_executor.workspace import Workspace

__all__ = [
    "DEFAULT_LIMITS",
    "JailFailed",
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
_SWEEP_ROUNDS = 200


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
    """``mode="namespaces"`` was asked for, and this machine refuses to create namespaces."""


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
        signal: The signal that ended it (``"SIGKILL"`` on timeout, ``"SIGXCPU"`` past the CPU
            limit), else ``None``.
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
        mode: ``"auto"`` (namespaces where possible), ``"namespaces"`` or ``"basic"``.

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
        self._isolation: str | None = BASIC if mode == BASIC else None
        self._probe_lock = threading.Lock()
        self._concurrency = asyncio.Semaphore(slots)
        self._privileged = os.geteuid() == 0

    @property
    def isolation(self) -> str:
        """``"namespaces"`` if the jail can create namespaces here, else ``"basic"``.

        Probed once, in a child process, on first use.

        Raises:
            SandboxUnavailable: ``mode="namespaces"`` and namespaces cannot be created.
        """
        with self._probe_lock:
            if self._isolation is None:
                works = _namespaces_work()
                if not works and self._mode == NAMESPACES:
                    raise SandboxUnavailable("this machine refuses to create namespaces")
                self._isolation = NAMESPACES if works else BASIC
                log.info("sandbox.probed", isolation=self._isolation)
            return self._isolation

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
            SandboxUnavailable: Namespaces were required and cannot be created.
        """
        isolation = await asyncio.to_thread(lambda: self.isolation)
        started = time.monotonic()
        async with self._slot() as uid:
            # Made here, not in a thread: a cancelled await would leave the folder behind.
            scratch = _make_scratch(uid)
            try:
                limit = limits.copy_in_mb * MIB
                copied = await asyncio.to_thread(_copy_in, workspace, scratch, limit, uid)
                ended = await self._execute(scratch, code, limits, uid, isolation)
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
        folder = self.data_dir / ".sandbox"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        self, scratch: Path, code: str, limits: SandboxLimits, uid: int | None, isolation: str
    ) -> SandboxRun:
        """Starts the jail and waits for it; the run, with no files copied back yet."""
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
        try:
            async with asyncio.timeout(limits.timeout_s):
                await _send(process, orders.encode())
                await process.wait()
                await asyncio.wait(readers)
        except TimeoutError:
            timed_out = True
        finally:
            try:
                await _stop(process, uid)
                await _settle(readers)
            finally:
                ready = _was_ready(ready_read)
        if not ready and not timed_out:
            raise JailFailed(stderr.text())
        returncode = process.returncode
        if timed_out or returncode is None:
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
        )


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
    """Copies new and changed regular files back; the paths copied, and notes on those refused."""
    changed: list[str] = []
    notes: list[str] = []
    total = 0
    for folder, folders, names in os.walk(scratch):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f != "__pycache__")
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            info = path.lstat()
            relative = str(path.relative_to(scratch))
            if not stat.S_ISREG(info.st_mode):
                continue
            try:
                if not _differs(path, info, copied.get(relative)):
                    continue
                relative.encode("utf-8")
                target = workspace.path(relative)
                if total + info.st_size > limit:
                    notes.append(f"{relative}: more than {limit // MIB} MB of files in all")
                    continue
                _write_back(path, target)
            except (OutsideWorkspace, UnicodeEncodeError) as refused:
                notes.append(f"{relative!r}: {refused}")
                continue
            except OSError as error:
                notes.append(f"{relative}: {error.strerror or error}")
                continue
            total += info.st_size
            changed.append(relative)
    return tuple(changed), notes


def _differs(path: Path, info: os.stat_result, before: _Copied | None) -> bool:
    if before is None:
        return True
    if (info.st_size, info.st_mtime_ns, info.st_ino) == (
        before.size,
        before.mtime_ns,
        before.inode,
    ):
        return False
    if info.st_size != before.size:
        return True
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(MIB):
            digest.update(chunk)
    return digest.hexdigest() != before.digest


def _write_back(source: Path, target: Path) -> None:
    """Writes the file into the workspace atomically: a crash leaves the old one or the new."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    reader = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with partial.open("wb") as writer:
            while chunk := os.read(reader, MIB):
                writer.write(chunk)
        partial.replace(target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(reader)


def _remove_tree(folder: Path) -> None:
    """Removes the scratch folder, even where the code took away its own permissions."""

    def unlock(function: Callable[[str], object], name: str, _error: object) -> None:
        path = Path(name)
        with contextlib.suppress(OSError):
            path.parent.chmod(0o700)
            if not path.is_symlink():
                path.chmod(0o700)
            function(name)

    shutil.rmtree(folder, onerror=unlock)


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
    """Kills the processes of ``uid`` until none is left (a killed process takes a moment)."""
    for _ in range(_SWEEP_ROUNDS):
        if not _kill_uid(uid):
            return
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
