"""The sandbox's scratch folder: made for one run, filled with a copy of the task's visible files,
copied back from (new and changed regular files only, bounded in number, size and depth, no link
followed) and removed, however deep or wide the code made it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from troika_executor.jail_orders import MIB
from troika_executor.sandbox_errors import WorkspaceTooLarge
from troika_executor.workspace import OutsideWorkspace

if TYPE_CHECKING:
    from troika_executor.workspace import Workspace

__all__ = ["DEEPEST", "MOST_FILES", "copy_in", "copy_out", "make_scratch", "remove_tree"]

log = structlog.get_logger("troika.executor.sandbox")

MOST_FILES = 500  # files one run copies back into the workspace
DEEPEST = 32  # folder levels below the scratch folder that copying back looks into
_MOST_ENTRIES = 20_000  # names in the scratch folder copying back looks at, in all
_MOST_NOTES = 20  # notes on files not copied back, before "and N more"
_REMOVAL_DEPTH = 64  # folders held open at once while removing; deeper ones are moved up first
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class _Copied:
    """A file as it was copied in, to tell afterwards whether the code changed it."""

    size: int
    mtime_ns: int
    inode: int
    digest: str


def make_scratch(uid: int | None) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="troika-sandbox-")).resolve()
    scratch.chmod(0o700)
    if uid is not None:
        os.chown(scratch, uid, uid)
    return scratch


def copy_in(workspace: Workspace, scratch: Path, limit: int, uid: int | None) -> dict[str, _Copied]:
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


def copy_out(
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


def remove_tree(folder: Path) -> None:
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
