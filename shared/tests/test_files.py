"""The task-file stores, the folder and the S3 bucket, pass the same tests: files stream in and
out whole, names stay inside their task, and a write or delete conditional on what the writer
last saw refuses to overwrite another writer's change."""

from __future__ import annotations

import hashlib
import os
import secrets
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import pytest
from aiobotocore.session import get_session

from troika_shared.files import (
    ANY,
    FileChanged,
    FileStore,
    LocalStore,
    Mirror,
    Pushed,
    digest,
    read_start,
)
from troika_shared.files.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture(params=["local", "s3"])
async def store(request, tmp_path: Path) -> AsyncIterator[FileStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    server = request.getfixturevalue("s3_server")
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            get_session().create_client("s3", **server.client_options())
        )
        bucket = f"troika-{secrets.token_hex(6)}"
        await client.create_bucket(Bucket=bucket)
        yield S3Store(client, bucket, "tasks/")


def local_file(tmp_path: Path, data: bytes, name: str = "source.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def content(store: FileStore, task: str, name: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(task, name)])


async def test_files_go_in_and_come_out_whole_and_are_listed(store, tmp_path) -> None:
    report = await store.write("t1", "report.md", local_file(tmp_path, b"# Totals\n"))
    nested = await store.write("t1", "notes/day 1.txt", local_file(tmp_path, "é€".encode()))
    await store.write("t2", "other.md", local_file(tmp_path, b"another task"))
    await store.write("t1", ".calls/k1.json", local_file(tmp_path, b"{}"))

    listed = await store.list("t1")
    assert sorted(listed) == [".calls/k1.json", "notes/day 1.txt", "report.md"]
    assert listed["report.md"] == report
    assert (listed["notes/day 1.txt"].size, listed["notes/day 1.txt"].etag) == (5, nested.etag)
    assert await content(store, "t1", "report.md") == b"# Totals\n"
    assert await content(store, "t1", "notes/day 1.txt") == "é€".encode()
    assert await store.list("t3") == {}
    assert list(await store.list("t1", "notes")) == ["notes/day 1.txt"]
    assert list(await store.list("t1", ".calls")) == [".calls/k1.json"]
    assert await store.list("t1", "note") == {}  # a folder, not the start of a name
    with pytest.raises(FileNotFoundError):
        await content(store, "t1", "missing.md")


async def test_a_large_file_streams_in_chunks_both_ways(store, tmp_path) -> None:
    data = os.urandom(9 << 20)  # past the multipart threshold: two parts on S3
    written = await store.write("big", "data.bin", local_file(tmp_path, data))
    assert written.size == len(data)
    chunks = [chunk async for chunk in store.read("big", "data.bin")]
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= 1 << 20
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()
    assert (await store.list("big"))["data.bin"].size == len(data)


async def test_a_write_based_on_a_stale_read_is_refused(store, tmp_path) -> None:
    first = await store.write("t", "plan.md", local_file(tmp_path, b"v1"), expected=None)
    with pytest.raises(FileChanged):  # it exists now: "there was none" no longer holds
        await store.write("t", "plan.md", local_file(tmp_path, b"mine"), expected=None)
    # Two replicas read v1; one writes v2, the other's write based on v1 is refused.
    second = await store.write("t", "plan.md", local_file(tmp_path, b"v2"), expected=first.etag)
    assert second.etag != first.etag
    with pytest.raises(FileChanged):
        await store.write("t", "plan.md", local_file(tmp_path, b"v2'"), expected=first.etag)
    assert await content(store, "t", "plan.md") == b"v2"
    # Deleting on a stale read is refused too; on the current one it goes.
    with pytest.raises(FileChanged):
        await store.delete("t", "plan.md", expected=first.etag)
    await store.delete("t", "plan.md", expected=second.etag)
    assert await store.list("t") == {}
    await store.delete("t", "plan.md", expected=second.etag)  # gone already: nothing to do
    third = await store.write("t", "plan.md", local_file(tmp_path, b"v3"), expected=None)
    with pytest.raises(FileChanged):  # it was created after the deleter saw none
        await store.delete("t", "plan.md", expected=None)
    await store.write("t", "plan.md", local_file(tmp_path, b"v4"), expected=ANY)
    assert third.etag != (await store.list("t"))["plan.md"].etag


async def test_a_large_write_on_a_stale_read_is_refused_too(store, tmp_path) -> None:
    first = await store.write("t", "data.bin", local_file(tmp_path, b"small"))
    await store.write("t", "data.bin", local_file(tmp_path, b"changed"))
    big = local_file(tmp_path, os.urandom(9 << 20))
    with pytest.raises(FileChanged):
        await store.write("t", "data.bin", big, expected=first.etag)
    assert await content(store, "t", "data.bin") == b"changed"


@pytest.mark.parametrize(
    "name", ["../escape.md", "/etc/passwd", "a/../../b", "", "a//b", "./a", "a\\b", "nul\x00"]
)
async def test_names_stay_inside_their_task(store, tmp_path, name) -> None:
    with pytest.raises(ValueError, match="not a file name"):
        await store.write("t", name, local_file(tmp_path, b"x"))
    with pytest.raises(ValueError, match="not a task id"):
        await store.list("../other")


async def test_deleting_a_task_removes_its_files_only(store, tmp_path) -> None:
    for n in range(3):
        await store.write("gone", f"f{n}.txt", local_file(tmp_path, b"x"))
    await store.write("kept", "f.txt", local_file(tmp_path, b"y"))
    await store.delete_task("gone")
    assert await store.list("gone") == {}
    assert list(await store.list("kept")) == ["f.txt"]


async def test_a_file_is_copied_to_another_task_and_read_in_part(store, tmp_path) -> None:
    data = os.urandom(3 << 20)
    await store.write("old", "in/data.bin", local_file(tmp_path, data))
    await store.write("new", "in/data.bin", local_file(tmp_path, b"replaced by the copy"))
    copied = await store.copy("old", "in/data.bin", "new")
    assert copied.size == len(data)
    assert (await store.list("new"))["in/data.bin"] == copied
    assert await content(store, "new", "in/data.bin") == data
    assert await content(store, "old", "in/data.bin") == data
    assert await read_start(store, "new", "in/data.bin", 10) == data[:10]
    assert await read_start(store, "new", "in/data.bin", 5 << 20) == data
    sha256 = hashlib.sha256(data).hexdigest()
    assert await digest(store, "new", "in/data.bin") == (len(data), sha256)
    with pytest.raises(FileNotFoundError):
        await store.copy("old", "missing.bin", "new")
    with pytest.raises(FileNotFoundError):
        await read_start(store, "old", "missing.bin", 10)


async def test_a_link_in_a_task_folder_is_not_followed(tmp_path) -> None:
    secret = local_file(tmp_path, b"the machine's own file", "secret.txt")
    store = LocalStore(tmp_path / "store")
    await store.write("t", "kept.txt", local_file(tmp_path, b"ok"))
    (tmp_path / "store" / "t" / "leak.txt").symlink_to(secret)
    (tmp_path / "store" / "t" / "folder").symlink_to(tmp_path)
    assert list(await store.list("t")) == ["kept.txt"]
    for name in ("leak.txt", "folder/secret.txt"):
        with pytest.raises(FileNotFoundError):
            await content(store, "t", name)
        with pytest.raises(FileNotFoundError):
            await store.copy("t", name, "other")
    assert await store.list("other") == {}


async def test_two_replicas_work_on_local_copies_and_neither_loses_the_others_change(
    store, tmp_path
) -> None:
    await store.write("t", "plan.md", local_file(tmp_path, b"v1"))
    await store.write("t", "data/rows.csv", local_file(tmp_path, b"a,b\n"))
    one, two = Mirror(store, "t", tmp_path / "one"), Mirror(store, "t", tmp_path / "two")
    assert sorted(await one.pull()) == ["data/rows.csv", "plan.md"]
    assert sorted(await two.pull()) == ["data/rows.csv", "plan.md"]
    assert await one.pull() == []  # nothing changed: nothing downloaded again

    # One replica's tool changes a file, adds one and removes one; it writes them back.
    (one.root / "plan.md").write_bytes(b"v2 from one")
    (one.root / "out").mkdir()
    (one.root / "out" / "report.md").write_bytes(b"# Report")
    (one.root / "data" / "rows.csv").unlink()
    pushed = await one.push()
    assert pushed == Pushed(written=("out/report.md", "plan.md"), removed=("data/rows.csv",))
    assert await one.push() == Pushed((), ())
    assert await content(store, "t", "plan.md") == b"v2 from one"

    # The other replica changed the same file from the old version: refused, nothing lost.
    (two.root / "plan.md").write_bytes(b"v2 from two")
    with pytest.raises(FileChanged):
        await two.push()
    assert await content(store, "t", "plan.md") == b"v2 from one"
    # Pulled again, it has the other's work (the removal too) and can redo its own on it.
    assert sorted(await two.pull()) == ["out/report.md", "plan.md"]
    assert (two.root / "plan.md").read_bytes() == b"v2 from one"
    assert not (two.root / "data" / "rows.csv").exists()
    (two.root / "plan.md").write_bytes(b"v3 from two")
    assert (await two.push()).written == ("plan.md",)
    assert await content(store, "t", "plan.md") == b"v3 from two"
    assert sorted(await store.list("t")) == ["out/report.md", "plan.md"]


async def test_a_file_both_replicas_create_is_kept_from_the_first(store, tmp_path) -> None:
    one, two = Mirror(store, "t", tmp_path / "one"), Mirror(store, "t", tmp_path / "two")
    await one.pull()
    await two.pull()
    (one.root / "new.md").write_bytes(b"first")
    (two.root / "new.md").write_bytes(b"second")
    await one.push()
    with pytest.raises(FileChanged):
        await two.push()
    assert await content(store, "t", "new.md") == b"first"
