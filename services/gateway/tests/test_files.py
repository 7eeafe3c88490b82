"""Files in a task's workspace: upload, list, download, and what is refused."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from troika_gateway.db.models import File

from .conftest import assert_problem
from .test_tasks import create


async def file_rows(gateway) -> int:
    async with gateway.app.state.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(File))


async def test_upload_list_and_download(client, gateway, alice) -> None:
    task = await create(client, alice)
    csv = b"region,total\nnorth,10\nsouth,32\n"
    uploaded = await client.post(
        f"/tasks/{task['id']}/files",
        headers=alice.headers,
        files=[
            ("files", ("sales.csv", csv, "text/csv")),
            ("files", ("notes.txt", b"hello", "text/plain")),
        ],
    )
    assert uploaded.status_code == 201, uploaded.text
    by_name = {f["name"]: f for f in uploaded.json()}
    assert by_name["sales.csv"]["size"] == len(csv)
    assert by_name["sales.csv"]["sha256"] == hashlib.sha256(csv).hexdigest()
    assert by_name["sales.csv"]["content_type"] == "text/csv"
    assert by_name["sales.csv"]["origin"] == "upload"

    listed = (await client.get(f"/tasks/{task['id']}/files", headers=alice.headers)).json()
    assert [f["name"] for f in listed] == ["notes.txt", "sales.csv"]

    download = await client.get(by_name["sales.csv"]["url"], headers=alice.headers)
    assert download.status_code == 200
    assert download.content == csv
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith("attachment")
    assert "sales.csv" in download.headers["content-disposition"]
    assert (gateway.settings.data_dir / "workspaces" / task["id"] / "sales.csv").read_bytes() == csv
    kinds = [
        e["kind"]
        for e in (await client.get(f"/tasks/{task['id']}/events", headers=alice.headers)).json()[
            "events"
        ]
    ]
    assert kinds[-1] == "files.uploaded"


async def test_an_upload_with_the_same_name_replaces_the_file(client, alice) -> None:
    task = await create(client, alice)
    for content in (b"first", b"second version"):
        await client.post(
            f"/tasks/{task['id']}/files", headers=alice.headers, files={"files": ("a.txt", content)}
        )
    listed = (await client.get(f"/tasks/{task['id']}/files", headers=alice.headers)).json()
    assert [(f["name"], f["size"]) for f in listed] == [("a.txt", len(b"second version"))]
    assert (
        await client.get(f"/tasks/{task['id']}/files/a.txt", headers=alice.headers)
    ).content == b"second version"


async def test_names_are_unicode_safe_and_the_type_is_guessed_when_not_given(client, alice) -> None:
    task = await create(client, alice)
    uploaded = await client.post(
        f"/tasks/{task['id']}/files",
        headers=alice.headers,
        files={"files": ("Überblick 2024 📈.xlsx", b"PK\x03\x04", "application/octet-stream")},
    )
    assert uploaded.status_code == 201
    [info] = uploaded.json()
    assert info["name"] == "Überblick 2024 📈.xlsx"
    assert (
        info["content_type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    download = await client.get(f"/tasks/{task['id']}/files/{info['name']}", headers=alice.headers)
    assert download.content == b"PK\x03\x04"


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "..", "a/b.txt", "..\\windows.ini", ".hidden", " "],
)
async def test_unsafe_file_names_are_refused_and_nothing_is_written(
    client, gateway, alice, name
) -> None:
    task = await create(client, alice)
    response = await client.post(
        f"/tasks/{task['id']}/files", headers=alice.headers, files={"files": (name, b"x")}
    )
    assert 400 <= response.status_code < 500, response.text
    assert await file_rows(gateway) == 0
    written = [p for p in gateway.settings.data_dir.parent.rglob("*") if p.is_file()]
    assert [p.name for p in written if not p.name.startswith("troika.db")] == []


@pytest.mark.parametrize("name", ["..%2F..%2Fsecret", "%2e%2e", "a%2Fb"])
async def test_traversal_in_a_download_name_finds_nothing(client, gateway, alice, name) -> None:
    task = await create(client, alice)
    (gateway.settings.data_dir / "secret").write_text("do not serve")
    response = await client.get(f"/tasks/{task['id']}/files/{name}", headers=alice.headers)
    assert 400 <= response.status_code < 500
    assert "do not serve" not in response.text


async def test_an_oversized_upload_is_refused_and_leaves_nothing(client, gateway, alice) -> None:
    task = await create(client, alice)
    big = b"x" * (gateway.settings.max_upload_bytes + 1)
    response = await client.post(
        f"/tasks/{task['id']}/files", headers=alice.headers, files={"files": ("big.bin", big)}
    )
    assert_problem(response, 413)
    assert await file_rows(gateway) == 0
    workspace = gateway.settings.data_dir / "workspaces" / task["id"]
    assert not workspace.exists() or list(workspace.iterdir()) == []


async def test_an_upload_without_files_is_refused(client, alice) -> None:
    task = await create(client, alice)
    response = await client.post(
        f"/tasks/{task['id']}/files", headers=alice.headers, data={"x": "1"}
    )
    assert 400 <= response.status_code < 500
