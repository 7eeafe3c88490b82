"""The README's pictures come from the browser tests' latest screenshots, or not at all."""

from __future__ import annotations

import pytest

from troika_testkit.browser import shot_folder_name
from troika_testkit.pictures import PICTURES, copy_pictures


def test_each_picture_is_the_latest_screenshot_of_its_test(tmp_path) -> None:
    for test, label in PICTURES.values():
        folder = tmp_path / "var" / "screenshots" / shot_folder_name(test)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"01-{shot_folder_name(label)}.png").write_bytes(b"old")
        (folder / f"07-{shot_folder_name(label)}.png").write_bytes(f"{test} {label}".encode())
    copied = copy_pictures(tmp_path)
    assert sorted(p.name for p in copied) == sorted(PICTURES)
    for path in copied:
        test, label = PICTURES[path.name]
        assert path.read_bytes() == f"{test} {label}".encode()


def test_a_missing_screenshot_names_the_test_to_run(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="run that test first"):
        copy_pictures(tmp_path)
