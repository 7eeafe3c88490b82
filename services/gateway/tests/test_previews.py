"""Previews of a task's files: tables for CSV and Excel, Markdown and text as text, JSON
indented, images named as such; only the start of a big file; nothing served past the folder."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from .test_tasks import create

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def _workbook() -> bytes:
    book = Workbook()
    sales = book.active
    sales.title = "Sales"
    sales.append(["region", "amount"])
    sales.append(["north", 10])
    sales.append(["south", 5.5])
    book.create_sheet("Notes").append(["checked by", "Ada"])
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


async def _task_with(client, account, *files: tuple[str, bytes, str]) -> str:
    task = await create(client, account)
    uploaded = await client.post(
        f"/tasks/{task['id']}/files",
        headers=account.headers,
        files=[("files", f) for f in files],
    )
    assert uploaded.status_code == 201, uploaded.text
    return task["id"]


async def test_each_kind_of_file_is_shown_as_a_person_reads_it(client, alice) -> None:
    task = await _task_with(
        client,
        alice,
        ("sales.csv", b"region;amount\nnorth;10\nsouth;5\n", "text/csv"),
        ("totals.xlsx", _workbook(), "application/octet-stream"),
        ("report.md", b"# Report\n\n<script>alert(1)</script>\n", "text/markdown"),
        ("data.json", b'{"b": [1, 2], "a": "x"}', "application/json"),
        ("chart.png", PNG, "image/png"),
        ("blob.bin", b"\x00\x01\x02", "application/octet-stream"),
    )

    async def preview(name: str, **params: str) -> dict:
        answer = await client.get(f"/tasks/{task}/previews/{name}", headers=alice.headers,
                                  params=params)  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()

    table = await preview("sales.csv")
    assert (table["kind"], table["columns"], table["rows"]) == (
        "table",
        ["region", "amount"],
        [["north", "10"], ["south", "5"]],
    )
    book = await preview("totals.xlsx")
    assert (book["kind"], book["sheets"], book["sheet"]) == ("table", ["Sales", "Notes"], "Sales")
    assert book["rows"] == [["north", "10"], ["south", "5.5"]]
    notes = await preview("totals.xlsx", sheet="Notes")
    assert (notes["columns"], notes["rows"]) == (["checked by", "Ada"], [])
    markdown = await preview("report.md")
    assert markdown["kind"] == "markdown"
    assert "<script>alert(1)</script>" in markdown["text"]  # text: the page escapes it
    assert (await preview("data.json"))["text"] == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "x"\n}'
    assert (await preview("chart.png"))["kind"] == "image"
    binary = await preview("blob.bin")
    assert (binary["kind"], binary["note"]) == (
        "none",
        "This file is not text; download it to open it.",
    )

    missing_sheet = await client.get(f"/tasks/{task}/previews/totals.xlsx",
                                     headers=alice.headers, params={"sheet": "Ghost"})  # fmt: skip
    assert missing_sheet.status_code == 404


async def test_only_the_start_of_a_big_file_is_shown(client, gateway, alice) -> None:
    rows = "".join(f"{n},{'x' * 300},{','.join(['c'] * 30)}\n" for n in range(400))
    task = await _task_with(client, alice, ("big.csv", rows.encode(), "text/csv"),
                            ("big.txt", b"small at first", "text/plain"))  # fmt: skip
    # an agent's tool made it bigger than an upload may be
    (gateway.settings.data_dir / "workspaces" / task / "big.txt").write_text("line\n" * 100_000)
    table = (await client.get(f"/tasks/{task}/previews/big.csv", headers=alice.headers)).json()
    assert table["truncated"] is True
    assert len(table["rows"]) == 50
    assert len(table["columns"]) == 20
    assert table["columns"][1].endswith("…")
    assert len(table["columns"][1]) == 200
    plain = (await client.get(f"/tasks/{task}/previews/big.txt", headers=alice.headers)).json()
    assert (plain["truncated"], len(plain["text"])) == (True, 256 * 1024)


@pytest.mark.parametrize("name", ["..%2F..%2Fsecret", "%2e%2e", "ghost.csv", ".hidden"])
async def test_a_preview_finds_nothing_outside_the_tasks_files(client, gateway, alice, name):
    task = await _task_with(client, alice, ("a.txt", b"a", "text/plain"))
    (gateway.settings.data_dir / "secret").write_text("do not serve")
    answer = await client.get(f"/tasks/{task}/previews/{name}", headers=alice.headers)
    assert 400 <= answer.status_code < 500
    assert "do not serve" not in answer.text


async def test_another_persons_file_has_no_preview(client, alice, bob) -> None:
    task = await _task_with(client, alice, ("a.txt", b"private", "text/plain"))
    answer = await client.get(f"/tasks/{task}/previews/a.txt", headers=bob.headers)
    assert answer.status_code == 404
    assert "private" not in answer.text
