"""Screenshots are kept five minutes, privately, and go with their task."""

from __future__ import annotations

import stat

import pytest

from troika_desktop.shots import KEEP_S, ShotStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_shot_is_deleted_five_minutes_after_it_was_taken(tmp_path) -> None:
    clock = Clock()
    store = ShotStore(tmp_path / "shots", clock=clock)
    first = store.keep("task-1", b"\x89PNG first")
    clock.now += 200
    second = store.keep("task-1", b"\x89PNG second")
    clock.now += KEEP_S - 200 - 1  # the first is a second short of five minutes old
    assert store.sweep() == 0
    clock.now += 1
    assert store.sweep() == 1
    assert not first.path.exists()
    assert [s.path for s in store.shots()] == [second.path]
    clock.now += KEEP_S
    assert store.sweep() == 1
    assert store.shots() == []
    assert list((tmp_path / "shots").iterdir()) == []  # no empty folders left behind


def test_a_tasks_shots_go_when_it_ends_and_others_stay(tmp_path) -> None:
    store = ShotStore(tmp_path / "shots")
    store.keep("task-1", b"a")
    store.keep("task-1", b"b")
    kept = store.keep("task-2", b"c")
    assert store.forget("task-1") == 2
    assert [s.path for s in store.shots()] == [kept.path]


def test_shots_are_private_to_the_user(tmp_path) -> None:
    store = ShotStore(tmp_path / "shots")
    shot = store.keep("task-1", b"secret screen")
    assert stat.S_IMODE(shot.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(shot.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    with pytest.raises(ValueError, match="not a task id"):
        store.keep("../outside", b"x")
