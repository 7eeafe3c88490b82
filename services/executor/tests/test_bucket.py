"""Task files in a bucket: two executor replicas, each with its own working folder, run a
task's calls in turn — each sees what the other wrote, a redelivered call is answered from the
ledger the other replica kept, and a change based on a stale copy is not kept."""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack

import pytest
from aiobotocore.session import get_session

from troika_executor.files import TaskFiles
from troika_executor.handlers import _write_back, execute
from troika_executor.tools import Toolbox
from troika_executor.workspace import Workspace
from troika_shared.approvals import approval_key, call_key, sign_approval
from troika_shared.files import FilesSettings, Mirror
from troika_shared.messages import ToolCall, ToolExecute, ToolOutcome

SECRET = "a test deployment's secret key, long enough"
TASK = "task-bucket"


def approved(tool: str, step: str = "s1", **arguments) -> ToolExecute:
    call = ToolCall(key=call_key(TASK, step, tool, arguments), tool=tool, arguments=arguments)
    return ToolExecute(correlation_id=TASK, user_id="u", subtask_id=step, call=call,
                       approval=sign_approval(approval_key(SECRET), TASK, call))  # fmt: skip


@pytest.fixture
async def bucket(s3_server):
    async with AsyncExitStack() as stack:
        name = f"troika-{secrets.token_hex(6)}"
        client = await stack.enter_async_context(
            get_session().create_client("s3", **s3_server.client_options())
        )
        await client.create_bucket(Bucket=name)
        options = s3_server.client_options()
        settings = FilesSettings(
            files="s3", files_bucket=name, files_endpoint_url=options["endpoint_url"],
            files_access_key_id=options["aws_access_key_id"],
            files_secret_access_key=options["aws_secret_access_key"],
            files_region=options["region_name"],
        )  # fmt: skip
        files = TaskFiles(settings)
        await files.open()
        stack.push_async_callback(files.close)
        yield files


async def run(files: TaskFiles, box: Toolbox, request: ToolExecute):
    return (await execute(request, box, approval_key(SECRET), files=files)).outcome


async def test_two_replicas_share_a_tasks_files_and_its_ledger(bucket, tmp_path) -> None:
    one, two = Toolbox(data_dir=tmp_path / "one"), Toolbox(data_dir=tmp_path / "two")
    wrote = approved("create_file", path="notes/plan.md", content="# Plan\n")
    assert (await run(bucket, one, wrote)).ok
    # The other replica reads it, and adds to it.
    read = await run(bucket, two, approved("read_file", step="s2", path="notes/plan.md"))
    assert read.output == "# Plan\n"
    added = approved("append_file", step="s3", path="notes/plan.md", content="- step\n")
    assert (await run(bucket, two, added)).ok
    # The first call comes again, to the second replica: answered from the shared ledger.
    again = await run(bucket, two, wrote)
    assert again.ok
    assert again.output.startswith("wrote notes/plan.md")
    store = bucket.store
    assert store is not None
    body = b"".join([c async for c in store.read(TASK, "notes/plan.md")])
    assert body == b"# Plan\n- step\n"  # not written over by the redelivered call
    names = set(await store.list(TASK))
    assert {"notes/plan.md", f".calls/{wrote.call.key}.json"} <= names


async def test_a_change_made_on_a_stale_copy_is_not_kept(bucket, tmp_path) -> None:
    one, two = Toolbox(data_dir=tmp_path / "one"), Toolbox(data_dir=tmp_path / "two")
    assert (await run(bucket, one, approved("create_file", path="a.md", content="v1"))).ok
    assert (await run(bucket, two, approved("read_file", step="s2", path="a.md"))).ok
    # Replica one changes the file; replica two's copy is now stale, but a pull before each
    # call brings it up to date, so its change is made on v2 and kept.
    assert (await run(bucket, one, approved("create_file", step="s3", path="a.md",
                                            content="v2"))).ok  # fmt: skip
    appended = await run(bucket, two, approved("append_file", step="s4", path="a.md",
                                               content="+two"))  # fmt: skip
    assert appended.ok
    assert bucket.store is not None
    assert b"".join([c async for c in bucket.store.read(TASK, "a.md")]) == b"v2+two"

    # A write that lands between a replica's pull and its push: the other version stays.
    root = Workspace(two.data_dir, TASK).root
    stale = Mirror(bucket.store, TASK, root)
    await stale.pull()
    (root / "a.md").write_text("from a stale copy")
    elsewhere = Mirror(bucket.store, TASK, tmp_path / "three")
    await elsewhere.pull()
    (tmp_path / "three" / "a.md").write_text("v3")
    await elsewhere.push()
    outcome = await _write_back(stale, ToolOutcome(ok=True, output="done"))
    assert not outcome.ok
    assert "were not kept" in outcome.error
    assert (root / "a.md").read_text() == "v3"


def test_local_files_need_no_bucket(tmp_path) -> None:
    assert TaskFiles(FilesSettings()).mirror(TASK, tmp_path) is None
