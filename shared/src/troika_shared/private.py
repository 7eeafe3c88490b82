"""The data folder is the owner's alone.

It holds the database, uploads, task files, the embedded servers' data and the generated keys.
Every Troika process that writes there calls :func:`keep_private` first: from then on what it
creates is readable by its own user only (umask 077: folders 0700, files 0600), and the folder
itself is closed to others (0700), which also closes whatever an earlier version left open
inside it. The processes it starts (servers, the web app's build) inherit the umask.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PRIVATE_UMASK", "keep_private"]

PRIVATE_UMASK = 0o077

log = structlog.get_logger("troika.private")


def keep_private(data_dir: Path | None) -> None:
    """Sets this process's umask to 077 and makes ``data_dir`` (created if missing) 0700.

    A folder of someone else's (a volume mounted read-only, another user's) is left as it is:
    only its owner may change its mode.
    """
    os.umask(PRIVATE_UMASK)
    if data_dir is None:
        return
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = data_dir.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 and info.st_uid == os.geteuid():
        data_dir.chmod(mode & ~0o077)
        log.info("data_dir.made_private", folder=str(data_dir), was=oct(mode))
