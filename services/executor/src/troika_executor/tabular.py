"""CSV (pandas) and Excel (openpyxl) tools.

Each runs in a worker thread (they read and write whole files). Column names and cell
references the agent gets wrong come back as plain errors that name what exists, so the next
step can correct itself.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import openpyxl
import pandas as pd
from openpyxl.utils.cell import coordinate_from_string, get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from troika_shared.messages import ToolOutcome
from troika_shared.tool_args import CsvAggregate

if TYPE_CHECKING:
    from pathlib import Path

    from troika_executor.workspace import Workspace
    from troika_shared.tool_args import (
        AnalyzeCsvArgs,
        CsvFilter,
        EditCsvArgs,
        EditExcelArgs,
        ReadCsvArgs,
        ReadExcelArgs,
    )

__all__ = ["analyze_csv", "edit_csv", "edit_excel", "read_csv", "read_excel"]

_MAX_OUTPUT = 40_000  # characters of a table shown to the agent


class TableProblem(ValueError):
    """Something about the table the agent asked for does not exist or does not fit."""


def _relative(workspace: Workspace, path: Path) -> str:
    return str(path.relative_to(workspace.root))


def _load_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TableProblem(f"there is no file {path.name!r}")
    try:
        return pd.read_csv(path, sep=_delimiter(path), encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TableProblem(f"{path.name} is not a readable CSV file: {exc}") from exc


def _delimiter(path: Path) -> str:
    """The file's delimiter among the usual ones (a comma when it has one column)."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as file:
        sample = file.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns))
        raise TableProblem(f"no column {', '.join(map(repr, missing))}; the columns are: {have}")


def _table(frame: pd.DataFrame, limit: int) -> str:
    shown = str(frame.head(limit).to_csv(index=False))
    if len(frame) > limit:
        shown += f"[{len(frame) - limit} more rows not shown]\n"
    if len(shown) > _MAX_OUTPUT:
        shown = shown[:_MAX_OUTPUT] + f"\n[truncated: {len(shown) - _MAX_OUTPUT} characters]"
    return shown


def _write_csv(frame: pd.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    frame.to_csv(partial, index=False)
    partial.replace(target)


async def _run(work: Any) -> ToolOutcome:  # noqa: ANN401 - a thunk returning ToolOutcome
    try:
        outcome: ToolOutcome = await anyio.to_thread.run_sync(work)
    except TableProblem as exc:
        return ToolOutcome(ok=False, error=str(exc))
    return outcome


async def read_csv(workspace: Workspace, args: ReadCsvArgs) -> ToolOutcome:
    """The columns with their types and counts, then the first rows."""
    path = workspace.path(args.path)

    def work() -> ToolOutcome:
        frame = _load_csv(path)
        schema = "\n".join(
            f"- {name}: {dtype} ({frame[name].notna().sum()} values)"
            for name, dtype in frame.dtypes.items()
        )
        output = f"{len(frame)} rows, {len(frame.columns)} columns:\n{schema}\n\n"
        return ToolOutcome(ok=True, output=output + _table(frame, args.rows))

    return await _run(work)


def _filter(frame: pd.DataFrame, rule: CsvFilter) -> pd.DataFrame:
    column = frame[rule.column]
    value: Any = rule.value
    if rule.op == "contains":
        return frame[column.astype(str).str.contains(str(value), case=False, regex=False)]
    if pd.api.types.is_numeric_dtype(column) and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise TableProblem(f"column {rule.column!r} holds numbers, not {value!r}") from None
    compare = {
        "==": column.eq,
        "!=": column.ne,
        ">": column.gt,
        ">=": column.ge,
        "<": column.lt,
        "<=": column.le,
    }[rule.op]
    try:
        return frame[compare(value)]
    except TypeError as exc:
        raise TableProblem(f"cannot compare column {rule.column!r} with {value!r}") from exc


async def analyze_csv(workspace: Workspace, args: AnalyzeCsvArgs) -> ToolOutcome:
    """Filters, then groups and aggregates (or describes), then sorts; optionally saves."""
    path = workspace.path(args.path)
    target = workspace.path(args.save_as) if args.save_as else None

    def work() -> ToolOutcome:
        frame = _load_csv(path)
        named = [f.column for f in args.filters] + args.group_by
        named += [a.column for a in args.aggregates]
        _columns(frame, named)
        for rule in args.filters:
            frame = _filter(frame, rule)
        if args.group_by or args.aggregates:
            aggregates = args.aggregates or [_count(frame, args.group_by)]
            spec = {f"{a.column}_{a.func}": (a.column, a.func) for a in aggregates}
            try:
                if args.group_by:
                    result = frame.groupby(args.group_by, dropna=False).agg(**spec).reset_index()
                else:
                    result = pd.DataFrame(
                        {name: [frame[col].agg(func)] for name, (col, func) in spec.items()}
                    )
            except TypeError as exc:
                raise TableProblem(
                    f"that aggregate does not fit the column's values: {exc}"
                ) from exc
        else:
            result = frame.describe(include="all").reset_index(names="statistic")
        if args.sort_by:
            _columns(result, [s.column for s in args.sort_by])
            result = result.sort_values(
                [s.column for s in args.sort_by], ascending=[not s.descending for s in args.sort_by]
            )
        output = (
            f"{len(frame)} rows matched; result: {len(result)} rows\n{_table(result, args.limit)}"
        )
        files: tuple[str, ...] = ()
        if target is not None:
            _write_csv(result, target)
            files = (_relative(workspace, target),)
            output += f"\nsaved as {files[0]}"
        return ToolOutcome(ok=True, output=output, files=files)

    return await _run(work)


def _count(frame: pd.DataFrame, group_by: list[str]) -> CsvAggregate:
    """The aggregate used when only a grouping is asked for: rows per group."""
    rest = [c for c in frame.columns if c not in group_by]
    return CsvAggregate(column=str(rest[0] if rest else frame.columns[0]), func="count")


async def edit_csv(workspace: Workspace, args: EditCsvArgs) -> ToolOutcome:
    """Applies the changes in order: cells, new columns, appended rows, deleted rows."""
    path = workspace.path(args.path)
    target = workspace.path(args.save_as) if args.save_as else path

    def work() -> ToolOutcome:
        frame = _load_csv(path)
        _columns(frame, [u.column for u in args.updates])
        for update in args.updates:
            if update.row >= len(frame):
                raise TableProblem(
                    f"there is no row {update.row}; the rows are 0 to {len(frame) - 1}"
                )
            column = frame[update.column]
            if update.value is not None and not pd.api.types.is_object_dtype(column):
                frame[update.column] = column.astype(object)
            frame.loc[frame.index[update.row], update.column] = update.value
        for new in args.add_columns:
            if new.name in frame.columns:
                raise TableProblem(f"there is a column {new.name!r} already")
            frame[new.name] = new.value
        if args.append_rows:
            _columns(frame, sorted({k for row in args.append_rows for k in row}))
            frame = pd.concat([frame, pd.DataFrame(args.append_rows)], ignore_index=True)
        if args.delete_rows:
            gone = [r for r in args.delete_rows if r >= len(frame)]
            if gone:
                raise TableProblem(f"there is no row {gone[0]}; the rows are 0 to {len(frame) - 1}")
            frame = frame.drop(index=frame.index[args.delete_rows]).reset_index(drop=True)
        _write_csv(frame, target)
        relative = _relative(workspace, target)
        summary = (
            f"wrote {relative}: {len(frame)} rows, {len(frame.columns)} columns "
            f"({len(args.updates)} cells changed, {len(args.add_columns)} columns added, "
            f"{len(args.append_rows)} rows appended, {len(args.delete_rows)} rows deleted)"
        )
        return ToolOutcome(ok=True, output=summary, files=(relative,))

    return await _run(work)


def _open_workbook(path: Path, *, values: bool = False) -> openpyxl.Workbook:
    keep_vba = path.suffix.lower() == ".xlsm"
    try:
        return openpyxl.load_workbook(path, data_only=values, keep_vba=keep_vba)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise TableProblem(f"{path.name} is not a readable Excel workbook: {exc}") from exc


def _close(book: openpyxl.Workbook) -> None:
    """Lets go of the source file a macro-enabled workbook keeps open for its VBA parts."""
    if getattr(book, "vba_archive", None) is not None:
        book.vba_archive.close()


def _sheet(book: openpyxl.Workbook, name: str | None, *, create: bool = False) -> Any:  # noqa: ANN401 - a worksheet
    if name is None:
        return book.worksheets[0]
    if name in book.sheetnames:
        return book[name]
    if create:
        return book.create_sheet(name)
    raise TableProblem(f"no sheet {name!r}; the sheets are: {', '.join(book.sheetnames)}")


async def read_excel(workspace: Workspace, args: ReadExcelArgs) -> ToolOutcome:
    """The sheets, then the cells of one: formulas as written, with their computed values."""
    path = workspace.path(args.path)

    def work() -> ToolOutcome:
        if not path.is_file():
            raise TableProblem(f"there is no file {args.path!r}")
        book = _open_workbook(path)
        computed = _open_workbook(path, values=True)
        _close(book)
        _close(computed)
        sheet = _sheet(book, args.sheet)
        values = computed[sheet.title]
        lines = [
            f"sheets: {', '.join(book.sheetnames)}",
            f"sheet {sheet.title!r}: {sheet.max_row} rows x {sheet.max_column} columns",
        ]
        for row in sheet.iter_rows(min_row=1, max_row=min(sheet.max_row, args.rows)):
            cells = []
            for cell in row:
                if cell.value is None:
                    continue
                text = f"{cell.coordinate}={cell.value!r}"
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    text += f" -> {values[cell.coordinate].value!r}"
                cells.append(text)
            if cells:
                lines.append("  ".join(cells))
        if sheet.max_row > args.rows:
            lines.append(f"[{sheet.max_row - args.rows} more rows not shown]")
        output = "\n".join(lines)
        if len(output) > _MAX_OUTPUT:
            output = output[:_MAX_OUTPUT] + f"\n[truncated: {len(output) - _MAX_OUTPUT} characters]"
        return ToolOutcome(ok=True, output=output)

    return await _run(work)


async def edit_excel(workspace: Workspace, args: EditExcelArgs) -> ToolOutcome:
    """Writes the cells and ranges (creating the workbook and sheets as needed) and saves."""
    path = workspace.path(args.path)
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return ToolOutcome(ok=False, error="edit_excel writes .xlsx or .xlsm files")

    def work() -> ToolOutcome:
        if path.is_file():
            book = _open_workbook(path)
        else:
            if path.suffix.lower() == ".xlsm":
                raise TableProblem("a new macro-enabled workbook cannot be made; use .xlsx")
            book = openpyxl.Workbook()
            if args.sheet:
                book.active.title = args.sheet
        for name in args.new_sheets:
            _sheet(book, name, create=True)
        sheet = _sheet(book, args.sheet, create=True)
        for cell in args.cells:
            sheet[cell.cell.upper()] = cell.value
        written = len(args.cells)
        for block in args.ranges:
            column_letter, first_row = coordinate_from_string(block.start.upper())
            first_column = openpyxl.utils.column_index_from_string(column_letter)
            for r, values in enumerate(block.rows):
                for c, value in enumerate(values):
                    sheet[f"{get_column_letter(first_column + c)}{first_row + r}"] = value
                    written += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        try:
            book.save(buffer)
        finally:
            _close(book)
        partial = path.with_name(f".{path.name}.part")
        partial.write_bytes(buffer.getvalue())
        partial.replace(path)
        relative = _relative(workspace, path)
        summary = (
            f"wrote {relative}: {written} cells in sheet {sheet.title!r}; "
            f"sheets: {', '.join(book.sheetnames)}"
        )
        return ToolOutcome(ok=True, output=summary, files=(relative,))

    return await _run(work)
