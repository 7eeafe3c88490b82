"""Shared pieces of the end-to-end tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


class Journal:
    """The probe agents' journal: which replica started and finished which message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[tuple[str, str, str]]:
        if not self.path.exists():
            return []
        rows = [line.split() for line in self.path.read_text().splitlines() if line.strip()]
        return [(event, message_id, pid) for event, message_id, pid in rows]

    def of(self, event: str, message_id: str) -> list[str]:
        """The pids that logged ``event`` for the message."""
        return [pid for e, m, pid in self.entries() if e == event and m == message_id]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")
