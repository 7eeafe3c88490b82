"""What this PC has done: each action's outcome by its call's key, kept on disk, so an action
given again (after a dropped connection, or replayed) is answered without acting twice."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Ledger"]

_KEEP = 2000  # the most recent outcomes kept


class Ledger:
    """Outcomes by key, in a private file (0600).

    Args:
        path: The file (created when the first outcome is kept).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._done[str(entry["key"])] = dict(entry["outcome"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: the rest still counts

    def get(self, key: str) -> dict[str, Any] | None:
        """The outcome of the action with this key, if this PC did it."""
        return self._done.get(key)

    def put(self, key: str, outcome: dict[str, Any]) -> None:
        """Keeps an outcome (on disk before it is sent, so a crash cannot make it act twice)."""
        self._done[key] = outcome
        if len(self._done) > _KEEP:
            self._done = dict(list(self._done.items())[-_KEEP:])
            self._rewrite()
            return
        line = json.dumps({"key": key, "outcome": outcome}, ensure_ascii=False) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    def _rewrite(self) -> None:
        partial = self.path.with_name(self.path.name + ".part")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            for key, outcome in self._done.items():
                file.write(json.dumps({"key": key, "outcome": outcome}, ensure_ascii=False) + "\n")
        partial.replace(self.path)
