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

The jail must start fast: it imports the standard library and its own modules only
(``jail_orders``, ``jail_host`` for the mounts, ``jail_guard`` for "basic" isolation), never
``troika_shared`` (whose package loads the bus client) or anything the executor alone needs.
It must load ``ctypes`` (through ``jail_host``), ``signal`` and ``_posixsubprocess`` before the
guard is installed:
"basic" isolation refuses to load them afterwards, and the code may still import them.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import linecache
import os
import resource
import signal
import sys
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING

from troika_executor.jail_guard import disarm, guard
from troika_executor.jail_host import Libc, blocked_top, cover_host, inside, seal
from troika_executor.jail_orders import MIB, NAMESPACES, Orders

if TYPE_CHECKING:
    from troika_executor.jail_orders import SandboxLimits

__all__ = ["main"]

_FILENAME = "<task code>"
_SETUP_FAILED = 125  # the exit status when the jail could not confine the code

# Linux constants the os module of Python 3.11 lacks: clone(2), prctl(2).
_CLONE_NEWNS = 0x0002_0000
_CLONE_NEWUTS = 0x0400_0000
_CLONE_NEWIPC = 0x0800_0000
_CLONE_NEWUSER = 0x1000_0000
_CLONE_NEWPID = 0x2000_0000
_CLONE_NEWNET = 0x4000_0000
_NAMESPACE_FLAGS = _CLONE_NEWNET | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38


def _map_user(uid: int, gid: int) -> None:
    """Maps the caller's uid and gid into the user namespace it just created."""
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def _unshare(libc: Libc) -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        libc.unshare(_NAMESPACE_FLAGS)
    else:
        libc.unshare(_NAMESPACE_FLAGS | _CLONE_NEWUSER)
        _map_user(uid, gid)


def _probe() -> int:
    """Exit status 0 when this machine lets the jail build its namespaces and seal the host."""
    try:
        libc = Libc()
        _unshare(libc)
    except OSError:
        return 1
    child = os.fork()
    if child == 0:
        try:
            seal(libc)
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
    _unshare(Libc())
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
    libc = Libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # if the jail dies, so does the namespace
    cover_host(orders, libc)
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


def _reach_imports() -> None:
    """Points the sys.path entries the code's uid could not pass through at descriptors opened
    before dropping root ("basic" isolation cannot mount): ``/proc/self/fd/N`` leads there."""
    moved: dict[str, str] = {}
    for index, entry in enumerate(sys.path):
        if entry and os.path.isdir(entry) and blocked_top(os.path.realpath(entry)):  # noqa: PTH112
            folder = os.open(entry, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            moved[entry.rstrip("/")] = sys.path[index] = f"/proc/self/fd/{folder}"
    # Packages already loaded (encodings, json, ...) find their submodules through __path__.
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if not isinstance(search, list):
            continue
        for index, entry in enumerate(search):
            for old, new in moved.items():
                if isinstance(entry, str) and inside(entry, old):
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
    libc = Libc()
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
