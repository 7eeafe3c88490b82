"""``--dist loadgroup``: the tests of an ``xdist_group`` run on one worker, one after another."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from troika_testkit import scaled

CHILD = """
import pytest

@pytest.mark.xdist_group("heavy")
@pytest.mark.parametrize("n", range(6))
def test_grouped(n):
    pass

@pytest.mark.parametrize("n", range(6))
def test_alone(n):
    pass
"""


@pytest.mark.slow
def test_a_group_runs_on_one_worker(tmp_path) -> None:
    (tmp_path / "test_child.py").write_text(CHILD)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "-v"],
        cwd=tmp_path, env=os.environ, capture_output=True, text=True, timeout=scaled(120),
        check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stdout + child.stderr
    ran = re.findall(r"\[(gw\d)\] .* PASSED test_child\.py::(test_\w+)\[\d\](@\w+)?", child.stdout)
    grouped = [(worker, group) for worker, name, group in ran if name == "test_grouped"]
    assert len(grouped) == 6, child.stdout
    assert {group for _, group in grouped} == {"@heavy"}
    assert len({worker for worker, _ in grouped}) == 1, child.stdout  # all on one worker
    assert len([name for _, name, _ in ran if name == "test_alone"]) == 6
