"""Files in a task's workspace: upload, list, download, and what is refused."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import func, select

from troika_gateway.db.models import File, Outbox
from troika_shared.browser import screen_path
from troika_shared.messages import PlanRequested, decode

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


async def _tasks_and_rows(client, gateway, account) -> tuple[int, int]:
    listed = (await client.get("/tasks", headers=account.headers)).json()
    return listed["total"], await file_rows(gateway)


async def test_a_task_made_with_its_files_is_planned_knowing_them(client, gateway, alice) -> None:
    csv = b"region,total\nnorth,10\n"
    response = await client.post(
        "/tasks/with-files",
        headers=alice.headers,
        data={"task": json.dumps({"objective": "Total the CSV I uploaded", "title": "Totals"})},
        files=[
            ("files", ("sales.csv", csv, "text/csv")),
            ("files", ("notes.txt", b"north is new", "text/plain")),
        ],
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert (task["title"], task["status"]) == ("Totals", "planning")
    listed = (await client.get(f"/tasks/{task['id']}/files", headers=alice.headers)).json()
    assert [(f["name"], f["origin"]) for f in listed] == [
        ("notes.txt", "upload"),
        ("sales.csv", "upload"),
    ]
    # the planners are asked with the files already there
    async with gateway.app.state.sessionmaker() as db:
        rows = await db.scalars(select(Outbox).where(Outbox.task_id == task["id"]))
        [request] = [m for m in (decode(r.payload) for r in rows) if isinstance(m, PlanRequested)]
    assert sorted(request.files) == ["notes.txt", "sales.csv"]
    events = (await client.get(f"/tasks/{task['id']}/events", headers=alice.headers)).json()
    kinds = [e["kind"] for e in events["events"]]
    assert kinds.index("files.uploaded") < kinds.index("plan.requested")


async def test_a_scheduled_task_can_be_made_with_its_files(client, alice) -> None:
    body = {"objective": "Send the report", "run_at": "2099-01-01T09:00:00+00:00"}
    response = await client.post(
        "/tasks/with-files",
        headers=alice.headers,
        data={"task": json.dumps(body)},
        files={"files": ("report.md", b"# Report\n", "text/markdown")},
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["status"] == "scheduled"
    listed = (await client.get(f"/tasks/{task['id']}/files", headers=alice.headers)).json()
    assert [f["name"] for f in listed] == ["report.md"]


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ("not json", "task"),
        (json.dumps({"objective": 7}), "objective"),
        (json.dumps({"objective": "x", "colour": "red"}), "task"),
        (json.dumps({"objective": "x", "run_at": "2001-01-01T00:00:00+00:00"}), "run_at"),
        (json.dumps({"objective": "   "}), "objective"),
    ],
)
async def test_a_refused_task_with_files_creates_nothing_and_writes_nothing(
    client, gateway, alice, task, field
) -> None:
    before = await _tasks_and_rows(client, gateway, alice)
    response = await client.post(
        "/tasks/with-files",
        headers=alice.headers,
        data={"task": task},
        files={"files": ("sales.csv", b"a,b\n1,2\n", "text/csv")},
    )
    body = assert_problem(response, 422)
    assert field in {e["field"] for e in body["errors"]}, body
    assert await _tasks_and_rows(client, gateway, alice) == before
    workspaces = gateway.settings.data_dir / "workspaces"
    assert not workspaces.exists() or not any(workspaces.rglob("sales.csv"))


async def test_a_refused_file_leaves_no_task_and_no_folder(client, gateway, alice) -> None:
    before = await _tasks_and_rows(client, gateway, alice)
    big = b"x" * (gateway.settings.max_upload_bytes + 1)
    for name, content, status in (("big.bin", big, 413), ("../escape.txt", b"x", 422)):
        response = await client.post(
            "/tasks/with-files",
            headers=alice.headers,
            data={"task": json.dumps({"objective": "Look at this"})},
            files=[
                ("files", ("fine.txt", b"fine", "text/plain")),
                ("files", (name, content, "application/octet-stream")),
            ],
        )
        assert_problem(response, status)
        assert await _tasks_and_rows(client, gateway, alice) == before
    workspaces = gateway.settings.data_dir / "workspaces"
    assert not workspaces.exists() or list(workspaces.iterdir()) == []


async def test_the_browser_page_is_shown_to_its_owner_only(client, gateway, alice, bob) -> None:
    task = await create(client, alice)
    url = f"/tasks/{task['id']}/browser/screen"
    none_yet = await client.get(url, headers=alice.headers)
    assert_problem(none_yet, 404)  # no browser action yet: no page

    png = b"\x89PNG\r\n\x1a\n" + b"page pixels"
    shot = screen_path(gateway.settings.data_dir, task["id"])
    shot.parent.mkdir(parents=True)
    shot.write_bytes(png)  # as the executor leaves it after an action
    shown = await client.get(url, headers=alice.headers)
    assert shown.status_code == 200
    assert shown.content == png
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["cache-control"] == "no-store"
    assert_problem(await client.get(url, headers=bob.headers), 404)
    listed = (await client.get(f"/tasks/{task['id']}/files", headers=alice.headers)).json()
    assert listed == []  # the page's state is not one of the task's files
