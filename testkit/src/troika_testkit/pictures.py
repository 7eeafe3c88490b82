"""``python -m troika_testkit.pictures``: the README's pictures, copied from the screenshots
the browser tests just took (``make pictures`` runs those tests first).

Each picture is one screenshot of a browser test, named by the test and its label; a missing
one is an error naming the test to run, so the README never shows a picture older than the
page it describes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from troika_testkit.browser import shot_folder_name

__all__ = ["PICTURES", "TESTS", "copy_pictures"]

_STORY = "test_a_task_with_an_uploaded_file_is_approved_and_completes_live[chromium]"
PICTURES = {
    "dashboard.png": (_STORY, "dashboard"),
    "approval.png": (_STORY, "second-approval"),
    "result.png": (_STORY, "preview"),
    "plan-review.png": (
        "test_the_plan_is_reviewed_changed_and_the_changes_reach_the_executor",
        "plan-changed",
    ),
    "approvals.png": (
        "test_the_same_call_from_parallel_subtasks_is_no_stall_approve_all_and_cancel",
        "approve-all",
    ),
    "phone.png": ("test_every_page_fits_a_phone_and_the_menu_opens_from_a_button", "phone-task"),
}
"""Each picture of ``docs/pictures/``: the test that takes it and the screenshot's label."""

TESTS = sorted({test.split("[")[0] for test, _ in PICTURES.values()})
"""The browser tests that take them."""


def copy_pictures(root: Path) -> list[Path]:
    """Copies each picture from ``var/screenshots/`` to ``docs/pictures/``.

    Raises:
        FileNotFoundError: A screenshot is missing (its test did not run, or failed).
    """
    shots, target = root / "var" / "screenshots", root / "docs" / "pictures"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for picture, (test, label) in PICTURES.items():
        found = sorted(
            (shots / shot_folder_name(test)).glob(f"[0-9][0-9]-{shot_folder_name(label)}.png")
        )
        if not found:
            raise FileNotFoundError(f"no screenshot {label!r} of {test}: run that test first")
        copied.append(Path(shutil.copyfile(found[-1], target / picture)))
    return copied


def main() -> None:
    """Copies the pictures, saying where each went; with ``--tests``, prints the ``-k``
    expression that selects the tests taking them."""
    if sys.argv[1:] == ["--tests"]:
        print(" or ".join(TESTS))  # noqa: T201 - for the Makefile
        return
    root = Path.cwd()
    try:
        for path in copy_pictures(root):
            print(path.relative_to(root))  # noqa: T201 - a command-line tool's output
    except FileNotFoundError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
