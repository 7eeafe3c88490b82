"""The file, CSV and Excel tools on real files, read back with the standard library and openpyxl."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from troika_executor.tools import Toolbox, run_tool

TASK = "task-1"
SALES = """region,product,amount,units
North,apples,120.5,10
South,pears,80,4
North,pears,30,2
East,apples,200,20
South,apples,19.5,1
"""


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "workspaces" / TASK
    root.mkdir(parents=True)
    (root / "sales.csv").write_text(SALES)
    return root


async def run(tmp_path, tool: str, **arguments):
    return await run_tool(Toolbox(tmp_path), TASK, tool, arguments)


def rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


async def test_append_and_delete_files(tmp_path, folder) -> None:
    first = await run(tmp_path, "append_file", path="notes/log.md", content="one\n")
    second = await run(tmp_path, "append_file", path="notes/log.md", content="two\n")
    assert (first.ok, second.ok) == (True, True)
    assert second.files == ("notes/log.md",)
    assert (folder / "notes" / "log.md").read_text() == "one\ntwo\n"
    deleted = await run(tmp_path, "delete_file", path="notes/log.md")
    assert deleted.output == "deleted notes/log.md"
    assert not (folder / "notes" / "log.md").exists()
    missing = await run(tmp_path, "delete_file", path="notes/log.md")
    assert missing.error == "there is no file 'notes/log.md'"
    escape = await run(tmp_path, "delete_file", path="../../outside.txt")
    assert escape.error.startswith("refused")


async def test_read_csv_shows_the_columns_their_types_and_the_first_rows(tmp_path, folder) -> None:
    result = await run(tmp_path, "read_csv", path="sales.csv", rows=2)
    assert result.ok, result.error
    assert result.output.startswith("5 rows, 4 columns:")
    assert "- amount: float64 (5 values)" in result.output
    assert "North,apples,120.5,10\nSouth,pears,80.0,4\n[3 more rows not shown]" in result.output


async def test_totals_per_region_sorted_and_saved(tmp_path, folder) -> None:
    result = await run(
        tmp_path,
        "analyze_csv",
        path="sales.csv",
        group_by=["region"],
        aggregates=[{"column": "amount", "func": "sum"}, {"column": "units", "func": "sum"}],
        sort_by=[{"column": "amount_sum", "descending": True}],
        save_as="out/totals.csv",
    )
    assert result.ok, result.error
    assert result.files == ("out/totals.csv",)
    assert rows(folder / "out" / "totals.csv") == [
        {"region": "East", "amount_sum": "200.0", "units_sum": "20"},
        {"region": "North", "amount_sum": "150.5", "units_sum": "12"},
        {"region": "South", "amount_sum": "99.5", "units_sum": "5"},
    ]


async def test_filters_and_description(tmp_path, folder) -> None:
    apples = await run(
        tmp_path,
        "analyze_csv",
        path="sales.csv",
        filters=[
            {"column": "product", "op": "==", "value": "apples"},
            {"column": "amount", "op": ">", "value": "50"},
        ],
        aggregates=[{"column": "amount", "func": "mean"}],
    )
    assert apples.ok, apples.error
    assert apples.output.startswith("2 rows matched")
    assert "160.25" in apples.output
    described = await run(tmp_path, "analyze_csv", path="sales.csv")
    assert "statistic" in described.output
    assert "mean" in described.output


async def test_wrong_columns_are_named_with_the_ones_that_exist(tmp_path, folder) -> None:
    result = await run(tmp_path, "analyze_csv", path="sales.csv", group_by=["country"])
    assert result.ok is False
    assert result.error == "no column 'country'; the columns are: region, product, amount, units"
    bad = await run(
        tmp_path,
        "analyze_csv",
        path="sales.csv",
        filters=[{"column": "amount", "op": ">", "value": "lots"}],
    )
    assert bad.error == "column 'amount' holds numbers, not 'lots'"


async def test_edit_csv_changes_cells_columns_and_rows(tmp_path, folder) -> None:
    result = await run(
        tmp_path,
        "edit_csv",
        path="sales.csv",
        updates=[{"row": 1, "column": "amount", "value": 85}],
        add_columns=[{"name": "checked", "value": "no"}],
        append_rows=[{"region": "West", "product": "plums", "amount": 12, "units": 3}],
        delete_rows=[0],
    )
    assert result.ok, result.error
    table = rows(folder / "sales.csv")
    assert len(table) == 5
    assert table[0] == {
        "region": "South",
        "product": "pears",
        "amount": "85",
        "units": "4",
        "checked": "no",
    }
    assert table[-1]["region"] == "West"
    assert table[-1]["checked"] == ""
    wrong = await run(
        tmp_path,
        "edit_csv",
        path="sales.csv",
        updates=[{"row": 99, "column": "amount", "value": 1}],
    )
    assert wrong.error == "there is no row 99; the rows are 0 to 4"
    assert len(rows(folder / "sales.csv")) == 5  # a refused edit writes nothing


async def test_edit_excel_creates_a_workbook_with_values_and_formulas(tmp_path, folder) -> None:
    result = await run(
        tmp_path,
        "edit_excel",
        path="report.xlsx",
        sheet="Totals",
        ranges=[{"start": "A1", "rows": [["region", "amount"], ["North", 150.5], ["South", 99.5]]}],
        cells=[{"cell": "B4", "value": "=SUM(B2:B3)"}, {"cell": "a4", "value": "total"}],
        new_sheets=["Notes"],
    )
    assert result.ok, result.error
    assert result.files == ("report.xlsx",)
    book = openpyxl.load_workbook(folder / "report.xlsx")
    assert book.sheetnames == ["Totals", "Notes"]
    sheet = book["Totals"]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["region", "amount"],
        ["North", 150.5],
        ["South", 99.5],
        ["total", "=SUM(B2:B3)"],
    ]
    shown = await run(tmp_path, "read_excel", path="report.xlsx", sheet="Totals")
    assert "sheets: Totals, Notes" in shown.output
    assert "B4='=SUM(B2:B3)'" in shown.output
    missing = await run(tmp_path, "read_excel", path="report.xlsx", sheet="Summary")
    assert missing.error == "no sheet 'Summary'; the sheets are: Totals, Notes"


def _macro_workbook(path, vba: bytes) -> None:
    """An .xlsm as Excel lays it out: the workbook part macro-enabled, with a VBA project."""
    buffer = io.BytesIO()
    book = openpyxl.Workbook()
    book.active["A1"] = "kept"
    book.save(buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
                ).replace(
                    b"<Default ",
                    b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
                    b"<Default ",
                    1,
                )
            if item.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/office/2006/'
                    b'relationships/vbaProject" Target="vbaProject.bin"/></Relationships>',
                )
            target.writestr(item, data)
        target.writestr("xl/vbaProject.bin", vba)


async def test_an_xlsm_keeps_its_macros_when_edited(tmp_path, folder) -> None:
    vba = b"\xd0\xcf\x11\xe0 a VBA project" * 40
    _macro_workbook(folder / "tools.xlsm", vba)
    result = await run(
        tmp_path, "edit_excel", path="tools.xlsm", cells=[{"cell": "B2", "value": 7}]
    )
    assert result.ok, result.error
    with zipfile.ZipFile(folder / "tools.xlsm") as archive:
        assert archive.read("xl/vbaProject.bin") == vba
        assert b"macroEnabled" in archive.read("[Content_Types].xml")
    book = openpyxl.load_workbook(folder / "tools.xlsm", keep_vba=True)
    book.vba_archive.close()
    assert (book.active["A1"].value, book.active["B2"].value) == ("kept", 7)
    shown = await run(tmp_path, "read_excel", path="tools.xlsm")
    assert "A1='kept'\nB2=7" in shown.output


async def test_not_a_workbook_is_a_plain_error(tmp_path, folder) -> None:
    (folder / "fake.xlsx").write_text("not a zip")
    result = await run(tmp_path, "read_excel", path="fake.xlsx")
    assert result.ok is False
    assert result.error.startswith("fake.xlsx is not a readable Excel workbook")
    wrong_kind = await run(tmp_path, "edit_excel", path="notes.txt", cells=[])
    assert wrong_kind.error == "edit_excel writes .xlsx or .xlsm files"


async def test_one_column_and_semicolon_files_are_read_as_written(tmp_path, folder) -> None:
    (folder / "names.csv").write_text("name\nalice\nbob\n")
    (folder / "de.csv").write_text("stadt;umsatz\nBerlin;10,5\nKöln;3\n")
    names = await run(tmp_path, "read_csv", path="names.csv")
    assert names.output.startswith("2 rows, 1 columns:\n- name: ")
    german = await run(tmp_path, "read_csv", path="de.csv")
    assert german.output.startswith("2 rows, 2 columns:\n- stadt: ")
    edited = await run(tmp_path, "edit_csv", path="names.csv", append_rows=[{"name": "carol"}])
    assert edited.ok, edited.error
    assert (folder / "names.csv").read_text() == "name\nalice\nbob\ncarol\n"
