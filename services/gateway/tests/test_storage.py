"""File names and paths in a task: nothing escapes a task's files or reaches a hidden one."""

from __future__ import annotations

import pytest

from troika_gateway.errors import InvalidInput
from troika_gateway.storage import file_name, safe_name


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


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("notes/summary.md", "notes/summary.md"),
        ("/report.md", "report.md"),
        ("a/b/c.txt", "a/b/c.txt"),
    ],
)
def test_a_path_in_a_task_is_stored_by_its_checked_parts(path: str, stored: str) -> None:
    assert file_name(path) == stored


@pytest.mark.parametrize(
    "path", ["../x", "notes/../../x", "notes/.hidden", "a//b", ".browser/state"]
)
def test_a_path_that_leaves_the_task_or_names_a_hidden_file_is_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        file_name(path)
