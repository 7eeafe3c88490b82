"""The jail: the interpreter that confines the ``run_python`` code, then becomes it.

The executor (``troika_executor.sandbox``) starts this module as a fresh interpreter, in its own
session, with the scratch folder as working directory and an environment of its own:
``python -I -B -m troika_executor.jail``. The jail reads its orders (``jail_orders.Orders``) as
JSON on stdin, then:

1. In "namespaces" isolation it unshares the network, mount, pid, IPC and UTS namespaces (and a
   user namespace when not root) and forks pid 1 of the new pid namespace. Pid 1 dies with the
   jail, makes every mount of the host read-only, mounts a fresh ``/proc``, covers the host's
   shared folders, the data directory and (when not root) the executor user's home with empty
   tmpfs mounts (binding back what the code needs, read-only), binds the scratch folder back
   writable, forks the process that runs the code, reaps orphans, and reports the code's wait
   status; the jail then ends the same way.
2. The process that is to run the code sets its resource limits, drops to the run's uid when
   the executor is root, sets ``no_new_privs`` and empties its capabilities. In "basic"
   isolation it also removes the ways to start or signal processes, or to make FIFOs, that
   raise no audit event.
3. It installs the audit hook guard, writes one byte on the ``ready_fd`` pipe (a run whose
   jail never wrote it, and did not time out, is ``JailFailed``), and runs the code as
   ``__main__``; tracebacks start in the code, not here.

If anything before the code's first line fails, the jail prints why on stderr and exits with
status 125. ``--probe`` only checks that the namespaces can be built (exit status 0).

The jail must start fast: it imports the standard library and ``jail_orders`` only, never
``troika_shared`` (whose package loads the bus client) or anything the executor alone needs.
It must load ``ctypes``, ``signal`` and ``_posixsubprocess`` before the guard is installed:
"basic" isolation refuses to load them afterwards, and the code may still import them.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import importlib
import linecache
import os
import pwd
import resource
import signal
import stat
import sys
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING

from troika_executor.jail_guard import disarm, guard
from troika_executor.jail_orders import MIB, NAMESPACES, Orders

if TYPE_CHECKING:
    from troika_executor.jail_orders import SandboxLimits

__all__ = ["main"]

_FILENAME = "<task code>"
_SETUP_FAILED = 125  # the exit status when the jail could not confine the code

# Linux constants the os module of Python 3.11 lacks: clone(2), mount(2), prctl(2), capset(2).
_CLONE_NEWNS = 0x0002_0000
_CLONE_NEWUTS = 0x0400_0000
_CLONE_NEWIPC = 0x0800_0000
_CLONE_NEWUSER = 0x1000_0000
_CLONE_NEWPID = 0x2000_0000
_CLONE_NEWNET = 0x4000_0000
_NAMESPACE_FLAGS = _CLONE_NEWNET | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x4_0000
# mount_setattr(2), Linux 5.12: one call makes a whole mount tree read-only.
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
# Per-mount flags a remount must repeat: in a user namespace the kernel refuses to drop them.
_KEPT_OPTIONS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC}
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_CAPABILITY_VERSION_3 = 0x2008_0522

# Folders covered by an empty tmpfs in "namespaces" isolation, besides the data directory: shared
# scratch space and the sockets of the host's services.
_COVERED = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # noqa: S108 - hidden from the code, not used
_SMALL_COVER = "size=64k,nr_inodes=1024,mode=0755"
# A home folder that is, holds or lies in one of these is the system's: it is never covered.
_SYSTEM_FOLDERS = (
    "/usr",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
)


class _MountAttr(ctypes.Structure):
    """``struct mount_attr`` of mount_setattr(2)."""

    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


class _Libc:
    """The C library calls Python 3.11 does not expose."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(None, use_errno=True)

    @staticmethod
    def _check(result: int, what: str) -> None:
        if result != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"{what}: {os.strerror(number)}")

    def unshare(self, flags: int) -> None:
        self._check(self._lib.unshare(ctypes.c_int(flags)), "unshare")

    def mount(
        self,
        source: str | None,
        target: str,
        kind: str | None,
        flags: int,
        options: str | None = None,
    ) -> None:
        encode = os.fsencode
        result = self._lib.mount(
            None if source is None else encode(source),
            encode(target),
            None if kind is None else encode(kind),
            ctypes.c_ulong(flags),
            None if options is None else encode(options),
        )
        self._check(result, f"mount {target}")

    def mount_setattr(self, target: str, *, read_only: bool) -> None:
        """Sets or clears read-only on ``target``'s mount and every mount below it."""
        bit = _MOUNT_ATTR_RDONLY
        attr = _MountAttr(bit if read_only else 0, 0 if read_only else bit, 0, 0)
        result = self._lib.syscall(
            ctypes.c_long(_SYS_MOUNT_SETATTR),
            ctypes.c_int(_AT_FDCWD),
            os.fsencode(target),
            ctypes.c_uint(_AT_RECURSIVE),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        self._check(result, f"mount_setattr {target}")

    def prctl(self, option: int, value: int) -> None:
        zero = ctypes.c_ulong(0)
        self._check(
            self._lib.prctl(ctypes.c_int(option), ctypes.c_ulong(value), zero, zero, zero), "prctl"
        )

    def drop_capabilities(self) -> None:
        """Empties the effective, permitted and inheritable sets (capset(2), version 3)."""
        header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
        sets = (ctypes.c_uint32 * 6)()
        self._check(self._lib.capset(header, sets), "capset")


def _map_user(uid: int, gid: int) -> None:
    """Maps the caller's uid and gid into the user namespace it just created."""
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def _unshare(libc: _Libc) -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        libc.unshare(_NAMESPACE_FLAGS)
    else:
        libc.unshare(_NAMESPACE_FLAGS | _CLONE_NEWUSER)
        _map_user(uid, gid)


def _probe() -> int:
    """Exit status 0 when this machine lets the jail build its namespaces and seal the host."""
    try:
        libc = _Libc()
        _unshare(libc)
    except OSError:
        return 1
    child = os.fork()
    if child == 0:
        try:
            libc.mount(None, "/", None, _MS_REC | _MS_PRIVATE)
            _set_read_only(libc, "/", read_only=True)
            libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
            alone = os.getpid() == 1 and Path("/proc/self").resolve().name == "1"
        except OSError:
            os._exit(1)
        os._exit(0 if alone else 1)
    _, status = os.waitpid(child, 0)
    return 0 if os.waitstatus_to_exitcode(status) == 0 else 1


def _enter_namespaces(orders: Orders) -> None:
    """Creates the namespaces; only the process that is to run the code returns.

    The jail's child is pid 1 of the new pid namespace: it covers the host, forks the code,
    reaps orphans, and reports the code's wait status to the jail, which ends the same way.
    """
    _unshare(_Libc())
    report_read, report_write = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(report_read)
        _init(orders, report_write)
        return
    os.close(report_write)
    os.close(orders.ready_fd)
    _, status = os.waitpid(init, 0)
    with os.fdopen(report_read, "rb") as report:
        reported = report.read()
    _exit_as(int(reported) if reported else status)


def _init(orders: Orders, report: int) -> None:
    """Pid 1 of the namespaces; returns only in the forked process that runs the code.

    The code is not pid 1 itself: the kernel drops signals pid 1 has no handler for, SIGXCPU
    included, and pid 1 must reap the orphans. When pid 1 exits, every process left in the
    namespace is killed.
    """
    libc = _Libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # if the jail dies, so does the namespace
    _cover_host(orders, libc)
    code = os.fork()
    if code == 0:
        os.close(report)
        return
    os.close(orders.ready_fd)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == code:
            break
    os.write(report, str(status).encode())
    os._exit(0)


def _exit_as(status: int) -> None:
    """Ends this process the way a child with wait status ``status`` ended."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        os._exit(128 + number)  # a signal that does not end a process by default
    os._exit(os.waitstatus_to_exitcode(status))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _needed_roots() -> list[str]:
    """The folders the code's interpreter reads: its installation, the environment, sys.path."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),  # noqa: PTH120
        *sys.path,
    }
    roots: list[str] = []
    for root in sorted(os.path.realpath(c) for c in candidates if c and os.path.isdir(c)):  # noqa: PTH112
        if not any(_inside(root, kept) for kept in roots):
            roots.append(root)
    return roots


def _blocked_top(path: str) -> str | None:
    """The topmost folder above ``path`` that other users may not pass through (e.g. ``/root``)."""
    folder = ""
    for part in path.strip("/").split("/")[:-1]:
        folder += "/" + part
        try:
            if not Path(folder).stat().st_mode & stat.S_IXOTH:
                return folder
        except OSError:
            return None
    return None


def _home() -> str | None:
    """The executor user's home folder, where its own secrets live; ``None`` when it has none
    or it is one of the system's folders (``/``, ``/usr``...), which the code needs."""
    try:
        home = os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir)
    except (KeyError, OSError):
        return None
    system = any(_inside(home, f) or _inside(f, home) for f in _SYSTEM_FOLDERS)
    return None if home == "/" or system else home


def _cover_host(orders: Orders, libc: _Libc) -> None:
    """Private mounts, the host read-only, a /proc of the new pid namespace, and empty tmpfs
    over what is hidden.

    Every mount inherited from the host is made read-only before anything is mounted afresh,
    so the code can write only to the tmpfs covers and its scratch folder, whatever its uid
    may write on the host. What the code needs under a covered folder (the interpreter where
    the code's uid could not reach it, e.g. under a 0700 ``/root`` or the executor user's
    home) is bound back in place, read-only; the data directory is covered last, so that no
    folder bound back can bring it into view; the scratch folder is bound back after it.
    """
    libc.mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    roots = {root: os.open(root, flags) for root in _needed_roots()}
    scratch = os.open(orders.scratch, flags)
    _set_read_only(libc, "/", read_only=True)
    libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    spare = f"size={orders.limits.file_mb}m,nr_inodes=4096,mode=1777"
    targets = [(folder, spare) for folder in _COVERED]
    if orders.uid is not None:
        blocked = {_blocked_top(root) for root in roots}
        targets += [(top, _SMALL_COVER) for top in blocked if top]
    elif (home := _home()) is not None:
        # The code runs as the executor's own user: its keys and settings must stay out of sight.
        targets.append((home, _SMALL_COVER))
    covered: list[str] = []
    for target, options in sorted(targets):
        if not any(_inside(target, done) for done in covered):
            _cover(libc, target, options, covered)
    _bind_back(libc, roots, covered)
    _cover(libc, orders.data_dir, "size=64k,nr_inodes=64,mode=0755", covered)
    _bind_scratch(libc, orders.scratch, scratch)


def _cover(libc: _Libc, target: str, options: str, covered: list[str]) -> None:
    if os.path.isdir(target) and not os.path.islink(target):  # noqa: PTH112, PTH114
        libc.mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
        covered.append(target)


def _bind_back(libc: _Libc, folders: dict[str, int], covered: list[str]) -> None:
    """Binds each folder (by its descriptor, opened before the covers) back where it was.

    A bind mount keeps the read-only flag of the mount it comes from: these stay read-only.
    """
    for path, folder in sorted(folders.items()):
        if any(_inside(path, done) for done in covered):
            Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
            libc.mount(f"/proc/self/fd/{folder}", path, None, _MS_BIND | _MS_REC)
        os.close(folder)


def _bind_scratch(libc: _Libc, path: str, folder: int) -> None:
    """Binds the scratch folder (by its descriptor) in place and makes that mount writable."""
    if not os.path.isdir(path):  # noqa: PTH112 - under a cover: only the folder is missing
        Path(path).mkdir(mode=0o755, parents=True)
    libc.mount(f"/proc/self/fd/{folder}", path, None, _MS_BIND | _MS_REC)
    os.close(folder)
    _set_read_only(libc, path, read_only=False)


def _set_read_only(libc: _Libc, target: str, *, read_only: bool) -> None:
    """Sets or clears read-only on the mount at ``target`` and every mount below it."""
    try:
        libc.mount_setattr(target, read_only=read_only)
    except OSError:
        _remount_each(libc, target, read_only=read_only)  # before Linux 5.12, or filtered


def _remount_each(libc: _Libc, target: str, *, read_only: bool) -> None:
    """What mount_setattr does, one bind remount per mount: every mount at or below ``target``
    (a mount hidden under another at the same place is out of reach anyway)."""
    for point, options in _mount_points():
        if _inside(point, target):
            flags = _MS_REMOUNT | _MS_BIND | (_MS_RDONLY if read_only else 0)
            for option in options:
                flags |= _KEPT_OPTIONS.get(option, 0)
            libc.mount(None, point, None, flags)


def _mount_points() -> list[tuple[str, frozenset[str]]]:
    """Each mount's place and per-mount options, from ``/proc/self/mountinfo``."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        points.append((_unescape(fields[4]), frozenset(fields[5].split(","))))
    return points


def _unescape(field: str) -> str:
    """The kernel writes a space, tab, newline or backslash in a path as ``\\ooo`` (octal)."""
    first, *rest = field.split("\\")
    return first + "".join(chr(int(part[:3], 8)) + part[3:] for part in rest)


def _reach_imports() -> None:
    """Points the sys.path entries the code's uid could not pass through at descriptors opened
    before dropping root ("basic" isolation cannot mount): ``/proc/self/fd/N`` leads there."""
    moved: dict[str, str] = {}
    for index, entry in enumerate(sys.path):
        if entry and os.path.isdir(entry) and _blocked_top(os.path.realpath(entry)):  # noqa: PTH112
            folder = os.open(entry, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            moved[entry.rstrip("/")] = sys.path[index] = f"/proc/self/fd/{folder}"
    # Packages already loaded (encodings, json, ...) find their submodules through __path__.
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if not isinstance(search, list):
            continue
        for index, entry in enumerate(search):
            for old, new in moved.items():
                if isinstance(entry, str) and _inside(entry, old):
                    search[index] = new + entry[len(old) :]
                    break
    importlib.invalidate_caches()


def _apply_limits(limits: SandboxLimits, *, privileged: bool) -> None:
    wanted = {
        resource.RLIMIT_CPU: (limits.cpu_s, limits.cpu_s + 1),
        resource.RLIMIT_AS: (limits.memory_mb * MIB, limits.memory_mb * MIB),
        resource.RLIMIT_FSIZE: (limits.file_mb * MIB, limits.file_mb * MIB),
        resource.RLIMIT_NPROC: (limits.processes, limits.processes),
        resource.RLIMIT_NOFILE: (limits.open_files, limits.open_files),
        resource.RLIMIT_CORE: (0, 0),
    }
    for which, (soft, hard) in wanted.items():
        ceiling = resource.getrlimit(which)[1]
        if privileged or ceiling == resource.RLIM_INFINITY:
            resource.setrlimit(which, (soft, hard))
        else:  # only root may raise a hard limit
            resource.setrlimit(which, (min(soft, hard, ceiling), min(hard, ceiling)))


def _confine(orders: Orders) -> None:
    """Everything between the jail's start and the code's first line."""
    libc = _Libc()
    namespaces = orders.isolation == NAMESPACES
    os.chdir(orders.scratch)
    _apply_limits(orders.limits, privileged=os.geteuid() == 0)
    if orders.uid is not None:
        if not namespaces:
            _reach_imports()
        os.setgroups([])
        os.setgid(orders.uid)
        os.setuid(orders.uid)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1)
    libc.drop_capabilities()  # in a user namespace of its own the code would hold them all
    if namespaces:
        # Set after setuid, which clears it: if pid 1 dies, so does the code.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        disarm()
    sys.addaudithook(guard(orders))
    os.write(orders.ready_fd, b"1")
    os.close(orders.ready_fd)


def _run_code(code: str) -> None:
    """Runs the code as ``__main__``; only returns by raising SystemExit."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sys.argv = [""]
    linecache.cache[_FILENAME] = (len(code), None, code.splitlines(keepends=True), _FILENAME)
    try:
        compiled = compile(code, _FILENAME, "exec")
    except (SyntaxError, ValueError) as error:
        traceback.print_exception(type(error), error, None)
        raise SystemExit(1) from None
    try:
        exec(compiled, module.__dict__)  # noqa: S102 - running the task's code is the point
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - reported like the interpreter would
        # Leave out the jail's own frame: the traceback starts in the task's code.
        trace = error.__traceback__
        traceback.print_exception(type(error), error, trace.tb_next if trace else None)
        raise SystemExit(1) from None
    raise SystemExit(0)


def main() -> None:
    """The jail: reads its orders, confines itself, then becomes the code."""
    if sys.argv[1:] == ["--probe"]:
        raise SystemExit(_probe())
    raw = sys.stdin.buffer.read()
    # The executor keeps its own files private (umask 077); the folders the jail makes to bind
    # the interpreter back must stay open to the code's uid, and the code's files are in its
    # own 0700 scratch folder anyway.
    os.umask(0o022)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    try:
        orders = Orders.decode(raw)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if orders.isolation == NAMESPACES:
            _enter_namespaces(orders)
        _confine(orders)
    except Exception as error:  # noqa: BLE001 - any failure here means the code cannot run
        print(f"sandbox: cannot confine the code: {error}", file=sys.stderr)  # noqa: T201
        sys.stderr.flush()
        os._exit(_SETUP_FAILED)
    _run_code(orders.code)


if __name__ == "__main__":
    main()
