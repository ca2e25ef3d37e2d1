"""The report workbooks (XLSX), written with openpyxl.

One sheet per view, a bold frozen header row, numbers stored as numbers with a number format
(money, litres, counts, percentages) and text stored as text. openpyxl stores a string that
starts with ``=`` as a formula, and a spreadsheet (or the CSV it is saved as) may run any text
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: such text is neutralised here
with a leading apostrophe (OWASP's rule for CSV injection), and characters XML cannot hold are
dropped. Pure: values in, bytes out.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

Value = str | int | float | None

# The number format of each style name; "text" and "header" cells keep the General format.
NUMBER_FORMATS = {
    "text": "General",
    "header": "General",
    "money": "#,##0.00",
    "litres": "#,##0.000",
    "count": "#,##0",
    "percent": "0.0%",
}
STYLES = tuple(NUMBER_FORMATS)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BAD_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")
_BOLD = Font(bold=True)
MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Sheet:
    name: str
    header: Sequence[str]
    rows: Sequence[Sequence[Value]]
    # Per row, the style of each value (``STYLES`` names); text where not given. Text values
    # are always plain text.
    styles: Sequence[Sequence[str]] = ()


def neutralise(text: str) -> str:
    """``text`` as a cell that can never be read as a formula."""
    clean = _BAD_XML.sub("", text)
    return "'" + clean if clean.startswith(_FORMULA_START) else clean


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    return str(get_column_letter(index + 1))


def sheet_names(names: Sequence[str]) -> list[str]:
    """Valid, unique sheet names (≤ 31 characters, none of []:*?/\\)."""
    used: set[str] = set()
    result = []
    for name in names:
        base = _BAD_SHEET_NAME.sub("_", name).strip("'") or "Sheet"
        candidate, n = base[:31], 2
        while candidate.lower() in used:
            suffix = f" ({n})"
            candidate, n = base[: 31 - len(suffix)] + suffix, n + 1
        used.add(candidate.lower())
        result.append(candidate)
    return result


def _cell_value(value: Value) -> Value:
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, int | float):
        return value
    return neutralise(str(value))


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """The .xlsx file of ``sheets`` (at least one)."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    book = Workbook()
    book.remove(book.active)
    for name, sheet in zip(sheet_names([s.name for s in sheets]), sheets, strict=True):
        ws = book.create_sheet(name)
        for i, title in enumerate(sheet.header, start=1):
            cell = ws.cell(row=1, column=i, value=neutralise(title))
            cell.font = _BOLD
            ws.column_dimensions[get_column_letter(i)].width = 22 if i == 1 else 14
        ws.freeze_panes = "A2"
        for r, row in enumerate(sheet.rows, start=2):
            styles = sheet.styles[r - 2] if r - 2 < len(sheet.styles) else ()
            for i, raw in enumerate(row):
                value = _cell_value(raw)
                if value is None:
                    continue  # an empty value is an empty cell
                cell = ws.cell(row=r, column=i + 1, value=value)
                if isinstance(value, str):
                    # Text is text: never a formula, whatever openpyxl would infer.
                    cell.data_type = "s"
                elif i < len(styles):
                    cell.number_format = NUMBER_FORMATS[styles[i]]
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
