"""How the jail hides the host from the code: the C library calls Python 3.11 does not expose
(``Libc``), and the mounts of "namespaces" isolation (``seal``, ``cover_host``).

Like the jail, standard library only: it starts in a fresh interpreter before the code.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from troika_executor.jail_orders import Orders

__all__ = [
    "MS_BIND",
    "MS_PRIVATE",
    "MS_REC",
    "Libc",
    "blocked_top",
    "cover_host",
    "inside",
    "remount_each",
    "seal",
    "set_read_only",
]

# Linux constants the os module of Python 3.11 lacks: mount(2), mount_setattr(2), capset(2).
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x4_0000
# mount_setattr(2), Linux 5.12: one call makes a whole mount tree read-only.
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
# Per-mount flags a remount must repeat: in a user namespace the kernel refuses to drop them.
_KEPT_OPTIONS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC}
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


class Libc:
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


def inside(path: str, folder: str) -> bool:
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
        if not any(inside(root, kept) for kept in roots):
            roots.append(root)
    return roots


def blocked_top(path: str) -> str | None:
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
    system = any(inside(home, f) or inside(f, home) for f in _SYSTEM_FOLDERS)
    return None if home == "/" or system else home


def seal(libc: Libc) -> None:
    """Makes every mount private and read-only, and mounts a /proc of the new pid namespace."""
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    set_read_only(libc, "/", read_only=True)
    libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)


def cover_host(orders: Orders, libc: Libc) -> None:
    """Private mounts, the host read-only, a /proc of the new pid namespace, and empty tmpfs
    over what is hidden.

    Every mount inherited from the host is made read-only before anything is mounted afresh,
    so the code can write only to the tmpfs covers and its scratch folder, whatever its uid
    may write on the host. What the code needs under a covered folder (the interpreter where
    the code's uid could not reach it, e.g. under a 0700 ``/root`` or the executor user's
    home) is bound back in place, read-only; the data directory is covered last, so that no
    folder bound back can bring it into view; the scratch folder is bound back after it.
    """
    flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    roots = {root: os.open(root, flags) for root in _needed_roots()}
    scratch = os.open(orders.scratch, flags)
    seal(libc)
    spare = f"size={orders.limits.file_mb}m,nr_inodes=4096,mode=1777"
    targets = [(folder, spare) for folder in _COVERED]
    if orders.uid is not None:
        blocked = {blocked_top(root) for root in roots}
        targets += [(top, _SMALL_COVER) for top in blocked if top]
    elif (home := _home()) is not None:
        # The code runs as the executor's own user: its keys and settings must stay out of sight.
        targets.append((home, _SMALL_COVER))
    covered: list[str] = []
    for target, options in sorted(targets):
        if not any(inside(target, done) for done in covered):
            _cover(libc, target, options, covered)
    _bind_back(libc, roots, covered)
    _cover(libc, orders.data_dir, "size=64k,nr_inodes=64,mode=0755", covered)
    _bind_scratch(libc, orders.scratch, scratch)


def _cover(libc: Libc, target: str, options: str, covered: list[str]) -> None:
    if os.path.isdir(target) and not os.path.islink(target):  # noqa: PTH112, PTH114
        libc.mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
        covered.append(target)


def _bind_back(libc: Libc, folders: dict[str, int], covered: list[str]) -> None:
    """Binds each folder (by its descriptor, opened before the covers) back where it was.

    A bind mount keeps the read-only flag of the mount it comes from: these stay read-only.
    """
    for path, folder in sorted(folders.items()):
        if any(inside(path, done) for done in covered):
            Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
            libc.mount(f"/proc/self/fd/{folder}", path, None, MS_BIND | MS_REC)
        os.close(folder)


def _bind_scratch(libc: Libc, path: str, folder: int) -> None:
    """Binds the scratch folder (by its descriptor) in place and makes that mount writable."""
    if not os.path.isdir(path):  # noqa: PTH112 - under a cover: only the folder is missing
        Path(path).mkdir(mode=0o755, parents=True)
    libc.mount(f"/proc/self/fd/{folder}", path, None, MS_BIND | MS_REC)
    os.close(folder)
    set_read_only(libc, path, read_only=False)


def set_read_only(libc: Libc, target: str, *, read_only: bool) -> None:
    """Sets or clears read-only on the mount at ``target`` and every mount below it."""
    try:
        libc.mount_setattr(target, read_only=read_only)
    except OSError:
        remount_each(libc, target, read_only=read_only)  # before Linux 5.12, or filtered


def remount_each(libc: Libc, target: str, *, read_only: bool) -> None:
    """What mount_setattr does, one bind remount per mount: every mount at or below ``target``
    (a mount hidden under another at the same place is out of reach anyway)."""
    for point, options in _mount_points():
        if inside(point, target):
            flags = _MS_REMOUNT | MS_BIND | (_MS_RDONLY if read_only else 0)
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
