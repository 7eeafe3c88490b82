"""Task files behind one interface: a folder on this machine, or an S3-compatible bucket.

A :class:`FileStore` keeps each task's files under the task's id, by relative name
(``report.md``, ``notes/summary.md``, ``.calls/<key>.json``). Reading streams the file in chunks
and writing streams it from a local file, so no file is ever held whole in memory. Every write
and delete can be conditional on what the writer last saw — the file's ``etag``, or that there
was none — so a file another replica changed in the meantime is never overwritten blindly: the
write fails with :class:`FileChanged` instead.
"""

from __future__ import annotations

from troika_shared.files.base import (
    ANY,
    Entry,
    Expected,
    FileChanged,
    FileStore,
    check_name,
)
from troika_shared.files.local import LocalStore
from troika_shared.files.mirror import Mirror, Pushed
from troika_shared.files.reading import digest, read_start
from troika_shared.files.settings import FilesSettings

__all__ = [
    "ANY",
    "Entry",
    "Expected",
    "FileChanged",
    "FileStore",
    "FilesSettings",
    "LocalStore",
    "Mirror",
    "Pushed",
    "check_name",
    "digest",
    "read_start",
]
