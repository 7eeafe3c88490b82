"""File names and workspace paths: nothing escapes a task's folder."""

from __future__ import annotations

import pytest

from troika_gateway.errors import InvalidInput
from troika_gateway.storage import Workspace, safe_name


@pytest.mark.parametrize("name", ["report.xlsx", "Überblick 📈.csv", "a b c.txt", "x" * 200])
def test_ordinary_names_are_kept(name: str) -> None:
    assert safe_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../x", "'/'"),
        ("a\\b", "'/'"),
        ("..", "'.'"),
        (".env", "'.'"),
        ("bad\x00name", "control"),
        ("new\nline", "control"),
        ("é" * 200, "longer than 255 bytes"),
    ],
)
def test_unsafe_names_are_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        safe_name(name)


def test_a_symlink_cannot_lead_out_of_the_workspace(tmp_path) -> None:
    workspace = Workspace(tmp_path, "task1")
    workspace.root.mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("secret")
    (workspace.root / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(InvalidInput, match="outside the task's folder"):
        workspace.path("link.txt")
    assert workspace.path("fine.txt") == workspace.root / "fine.txt"
