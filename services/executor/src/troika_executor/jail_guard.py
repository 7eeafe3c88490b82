"""The jail's guard for "basic" isolation: an audit hook that refuses sockets, new processes,
signals, ``ctypes``, the data directory, other processes' ``/proc`` entries and writes outside
the scratch folder, and the removal of the ways to do some of that which raise no audit event.

A fallback, not a security boundary (see ``troika_executor.sandbox``). Like the jail, it loads
the standard library and ``jail_orders`` only.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import signal
import stat
import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from troika_executor.jail_orders import BASIC

if TYPE_CHECKING:
    from collections.abc import Callable, Sized

    from troika_executor.jail_orders import Orders

__all__ = ["disarm", "guard"]

# Modules the "basic" guard refuses to load afresh: a new copy would restore what disarm removed.
_RELOADS = frozenset({"_posixsubprocess", "_signal", "signal", "_ctypes", "ctypes"})


def disarm() -> None:
    """Removes the few ways to start or signal processes, or to make files, that raise no
    audit event."""
    import _imp  # noqa: PLC0415 - the import system's own module, disarmed below
    import _posixsubprocess  # noqa: PLC0415 - loaded here so that it can be disarmed

    def refused(*_args: object, **_kwargs: object) -> None:
        raise PermissionError("starting processes is not allowed in the sandbox")

    def no_nodes(*_args: object, **_kwargs: object) -> None:
        raise PermissionError("making device nodes and FIFOs is not allowed in the sandbox")

    def no_copies(*_args: object, **_kwargs: object) -> None:
        raise PermissionError("loading a built-in module again is not allowed in the sandbox")

    _posixsubprocess.__dict__["fork_exec"] = refused
    signal_c = sys.modules.get("_signal")
    for module in (signal, signal_c):
        if module is not None and "pidfd_send_signal" in module.__dict__:
            module.__dict__["pidfd_send_signal"] = refused
    # mkfifo and mknod make files anywhere the uid may write, and raise no audit event.
    for module in (os, sys.modules["posix"]):
        module.__dict__["mkfifo"] = no_nodes
        module.__dict__["mknod"] = no_nodes
    # A fresh copy of a built-in module (posix, _signal) would bring back what was removed above
    # and raises no audit event: every built-in module is loaded now, and no copy can be made.
    for name in sys.stdlib_module_names.intersection(sys.builtin_module_names):
        importlib.import_module(name)
    _imp.__dict__["create_builtin"] = no_copies


# What the resolver tells about a path, besides where it leads.
_CLIMBS = 1  # a ".." in a relative path, inside the scratch folder or after a /proc link
_THROUGH_PROC = 2  # it follows a link of /proc/<pid>/ (fd/N, cwd, root, exe, map_files)


def _resolver(scratch: str, *, trust_proc: bool) -> Callable[[str], tuple[str, int]]:
    """A realpath built on C functions only: the code cannot patch what the guard relies on.

    It also says whether the path climbs with ".." where the guard cannot vouch for where that
    leads (the code may swap a folder for a link meanwhile: see ``_guard``), and whether it
    goes through a link of ``/proc/<pid>/``, whose target another thread may change.
    ``trust_proc``: ".." after such a link is allowed (the imports of a root executor's code go
    through ``/proc/self/fd``, see ``_reach_imports``; there the uid's permissions stand guard).
    """

    # One flat function, like the guard: whatever it calls is bound as a default argument.
    def resolve(  # noqa: PLR0912
        name: str,
        /,
        *,
        _scratch: str = scratch,
        _trust_proc: bool = trust_proc,
        _getcwd: Callable[[], str] = os.getcwd,
        _lstat: Callable[[str], os.stat_result] = os.lstat,
        _readlink: Callable[[str], str] = os.readlink,
        _is_link: Callable[[int], bool] = stat.S_ISLNK,
        _len: Callable[[Sized], int] = len,
        _error: type[Exception] = OSError,
        _climbs: int = _CLIMBS,
        _through_proc: int = _THROUGH_PROC,
    ) -> tuple[str, int]:
        how = 0
        if not name.startswith("/"):
            if ".." in name.split("/"):
                how |= _climbs
            name = _getcwd() + "/" + name
        todo = name.split("/")
        todo.reverse()
        done: list[str] = []
        hops = 0
        confined = False
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if confined:
                    how |= _climbs
                if done:
                    done.pop()
                continue
            done.append(part)
            candidate = "/" + "/".join(done)
            if candidate == _scratch or candidate.startswith(_scratch + "/"):
                confined = True
            try:
                mode = _lstat(candidate).st_mode
            except _error:
                continue
            if _is_link(mode):
                hops += 1
                if hops > 40:
                    return candidate, how
                if _len(done) > 2 and done[0] == "proc":
                    how |= _through_proc
                    confined = confined or not _trust_proc
                target = _readlink(candidate)
                done.pop()
                if target.startswith("/"):
                    done.clear()
                more = target.split("/")
                more.reverse()
                todo.extend(more)
        return "/" + "/".join(done), how

    return resolve


# Events refused in "basic" isolation: new processes, signals, and reaching the guard itself.
_BASIC_REFUSED = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.startfile",
        "subprocess.Popen",
        "os.kill",
        "os.killpg",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys.settrace",
        "sys.setprofile",
    }
)
# Events that change the file system, checked in "basic" isolation to stay in the scratch folder:
# where their paths are among the arguments, each with the index of its dir_fd (-1: none).
_CHANGES = MappingProxyType(
    {
        "os.chmod": ((0, 2),),
        "os.chown": ((0, 3),),
        "os.link": ((0, 2), (1, 3)),
        "os.mkdir": ((0, 2),),
        "os.remove": ((0, 1),),
        "os.rename": ((0, 2), (1, 3)),
        "os.rmdir": ((0, 1),),
        "os.symlink": ((1, 2),),
        "os.truncate": ((0, -1),),
        "os.utime": ((0, 3),),
        "os.setxattr": ((0, -1),),
        "os.removexattr": ((0, -1),),
    }
)
_NAME_LOOKUPS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_ADDRESSED = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Path objects the "basic" guard accepts besides str and bytes: the standard library's.
_PATH_TYPES = (pathlib.PurePosixPath, pathlib.PosixPath, os.DirEntry)


def guard(orders: Orders) -> Callable[[str, tuple[Any, ...]], None]:  # noqa: PLR0915 - the hook
    """The audit hook. Sockets other than Unix ones are refused everywhere (defence in depth:
    in "namespaces" isolation the network namespace is what stops them); "basic" isolation adds
    the rest. Everything it uses is bound as a default argument, so patching modules or builtins
    from the code changes nothing.

    In "basic" isolation the guard checks a path where the system call will resolve it, which
    an audit event does not always tell: ``open`` omits the ``dir_fd`` of ``os.open``, and
    another thread may change a folder, the working folder or a descriptor between the check
    and the call. So the guard keeps these true, and what it checks then holds:

    - the working folder stays in the scratch folder (``os.chdir``; a race of threads changing
      it at once is not ruled out), and no folder outside it is opened: every descriptor of a
      folder the code holds is one of the scratch folder's;
    - links the code makes point into the scratch folder, never with "..";
    - a path never climbs with ".." where the code could have changed what it climbs from: in
      a relative path, below the scratch folder, or after a link of ``/proc/<pid>/``;
    - nothing is written through a link of ``/proc/<pid>/``, nor changed through a descriptor
      (``fchmod`` and the like); events that give a ``dir_fd`` are checked relative to it.

    A relative path without ".." from any folder of the scratch folder, through links that
    stay in it, stays in it: the ``dir_fd`` that ``open`` does not show cannot lead out.
    """
    strict = orders.isolation == BASIC
    scratch = orders.scratch.rstrip("/")
    hidden = orders.data_dir.rstrip("/")
    pid = os.getpid()
    own = f"/proc/{pid}"
    resolve = _resolver(scratch, trust_proc=orders.uid is not None)

    # One flat function: whatever it calls must be bound as a default argument, see above.
    def guard(  # noqa: PLR0911, PLR0912, PLR0915
        event: str,
        args: tuple[Any, ...],
        /,
        *,
        _strict: bool = strict,
        _scratch: str = scratch,
        _hidden: str = hidden,
        _own: str = own,
        _pid: int = pid,
        _resolve: Callable[[str], tuple[str, int]] = resolve,
        _refused: frozenset[str] = _BASIC_REFUSED,
        _changes: MappingProxyType[str, tuple[tuple[int, int], ...]] = _CHANGES,
        _lookups: frozenset[str] = _NAME_LOOKUPS,
        _addressed: frozenset[str] = _ADDRESSED,
        _reloads: frozenset[str] = _RELOADS,
        _path_types: tuple[type, ...] = _PATH_TYPES,
        _climbs: int = _CLIMBS,
        _through_proc: int = _THROUGH_PROC,
        _unix: int = 1,  # AF_UNIX
        _writes: int = _WRITES,
        _isinstance: Callable[[object, Any], bool] = isinstance,
        _len: Callable[[Sized], int] = len,
        _text: tuple[type, ...] = (str, bytes),
        _type: Callable[[object], type] = type,
        _fspath: Callable[[Any], Any] = os.fspath,
        _readlink: Callable[[str], str] = os.readlink,
        _stat: Callable[[str], os.stat_result] = os.stat,
        _is_dir: Callable[[int], bool] = stat.S_ISDIR,
        _as_str: Callable[[str], str] = str.__str__,
        _decode: Callable[..., str] = bytes.decode,
        _digits: Callable[[int], str] = int.__repr__,
        _str: type = str,
        _bytes: type = bytes,
        _int: type = int,
        _error: type[Exception] = OSError,
        _denied: type[Exception] = PermissionError,
    ) -> None:
        def under(path: str, folder: str) -> bool:
            return path == folder or path.startswith(folder + "/")

        def readable(path: str) -> bool:
            if under(path, _hidden) and not under(path, _scratch):
                return False
            if path.startswith("/proc/"):
                first = path[6:].split("/", maxsplit=1)[0]
                if first.isdigit() and "/proc/" + first != _own:
                    return False
            return True

        def writable(path: str) -> bool:
            return under(path, _scratch) or path == "/dev/null"

        def text(path: object) -> str:
            """The path as a plain str (a subclass could answer the guard's calls its own way)."""
            for kind in _path_types:
                if _type(path) is kind:
                    path = _fspath(path)
                    break
            if _isinstance(path, _str):
                return _as_str(path)  # type: ignore[arg-type]
            if _isinstance(path, _bytes):
                return _decode(path, "utf-8", "surrogateescape")
            raise _denied("only str, bytes and pathlib paths are allowed in the sandbox")

        def place(path: object, dir_fd: object) -> tuple[str, int]:
            """Where ``path`` (relative to ``dir_fd`` when one is given) leads, and how."""
            if _isinstance(path, _int):
                return _readlink("/proc/self/fd/" + _digits(path)), _through_proc  # type: ignore[arg-type]
            name = text(path)
            if _isinstance(dir_fd, _int) and dir_fd >= 0 and not name.startswith("/"):  # type: ignore[operator]
                base = _readlink("/proc/self/fd/" + _digits(dir_fd))  # type: ignore[arg-type]
                where, how = _resolve(base + "/" + name)
                return where, how | (_climbs if ".." in name.split("/") else 0)
            return _resolve(name)

        if event == "socket.__new__":
            if args[1] != _unix:
                raise _denied("network access is not allowed in the sandbox")
            return
        if event in _lookups:
            raise _denied("network access is not allowed in the sandbox")
        if event in _addressed:
            address = args[1] if _len(args) > 1 else None
            if address is not None and (_strict or not _isinstance(address, _text)):
                raise _denied("network access is not allowed in the sandbox")
            return
        if not _strict:
            return
        if event in _refused or event.startswith("ctypes."):
            raise _denied(f"{event} is not allowed in the sandbox")
        if event == "import":
            if args[0] in _reloads:
                raise _denied(f"loading {args[0]} again is not allowed in the sandbox")
            return
        if event == "object.__setattr__":
            if args[1] == "__code__":
                raise _denied("replacing a function's code is not allowed in the sandbox")
            return
        if event == "open":
            target, flags = args[0], args[2]
            if target is None or _isinstance(target, _int):
                return
            where, how = place(target, None)
            writing = _isinstance(flags, _int) and flags & _writes
            if how & _climbs:
                raise _denied(f"{where!r}: '..' is not allowed there in the sandbox")
            if writing and how & _through_proc:
                raise _denied(
                    f"{where!r}: writing through /proc/self/fd or /dev/stdout is not allowed "
                    "in the sandbox (print to sys.stdout instead)"
                )
            if not readable(where) or (writing and not writable(where)):
                raise _denied(f"{where!r} is out of the sandbox's reach")
            if not under(where, _scratch):
                try:
                    folder = _is_dir(_stat(where).st_mode)
                except _error:
                    folder = False
                if folder:
                    raise _denied(
                        f"{where!r}: opening a folder is allowed in the scratch folder only"
                    )
            return
        if event in ("os.listdir", "os.scandir"):
            target = "." if args[0] is None else args[0]
            if _isinstance(target, _int):
                return  # a descriptor of a folder: one in the scratch folder (see above)
            where, how = place(target, None)
            if how & _climbs or not readable(where):
                raise _denied(f"{where!r} is out of the sandbox's reach")
            return
        if event == "os.chdir":
            # ".." is fine here: the working folder itself is what is checked.
            where, _ = place(args[0], None)
            if not under(where, _scratch):
                raise _denied("the working folder must stay in the scratch folder")
            return
        if event == "resource.prlimit":
            if args[0] not in (0, _pid):
                raise _denied("changing other processes' limits is not allowed in the sandbox")
            return
        if event == "sqlite3.connect":
            database = text(args[0])
            if database in ("", ":memory:"):
                return
            where, how = _resolve(database)
            if how or database.startswith("file:") or not writable(where):
                raise _denied(f"{database!r} is out of the sandbox's reach")
            return
        spots = _changes.get(event)
        if spots is None:
            return
        if event == "os.symlink":
            # A link must lead into the scratch folder from wherever it is moved to in it.
            target = text(args[0])
            if ".." in target.split("/") or (
                target.startswith("/") and not under(target, _scratch)
            ):
                raise _denied(f"a link to {target!r} is out of the sandbox's reach")
        for index, fd_index in spots:
            each = args[index]
            if event == "os.truncate" and _isinstance(each, _int):
                continue  # needs a descriptor open for writing, which only the scratch gives
            where, how = place(each, args[fd_index] if fd_index >= 0 else None)
            if how or not writable(where):
                raise _denied(f"{where!r} is out of the sandbox's reach")

    return guard
