"""The terminal's session with the gateway (see :mod:`troika_client`).

The session's refresh token is kept in ``$XDG_CONFIG_HOME/troika/session.json`` (readable by
the owner only), so ``troika task`` signs in once; ``TROIKA_USERNAME`` and ``TROIKA_PASSWORD``
sign in without a prompt.
"""

from __future__ import annotations

import os
from pathlib import Path

from troika_client import FileTokenStore, Session

__all__ = ["CLIENT_NAME", "open_session", "session_file"]

CLIENT_NAME = "troika-cli"


def session_file() -> Path:
    """Where the session is kept."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "troika" / "session.json"


def open_session(api: str) -> Session:
    """A session with the gateway at ``api``, its refresh token kept in :func:`session_file`."""
    return Session.open(api, client_name=CLIENT_NAME, store=FileTokenStore(session_file()))
