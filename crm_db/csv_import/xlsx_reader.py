"""Read the first sheet of an XLSX workbook as the same records a CSV file gives.

openpyxl reads the workbook in read-only mode. Each row becomes a record tagged with its sheet
row number, so errors read ``FILE:ROW: field: problem``. Cells become the text the kinds'
parsers expect: text as is, whole numbers as integers (Excel stores every number as a float:
``1200.0`` reads ``1200``), other numbers in their shortest exact decimal form (``1234.56``; the
column's parser then decides, so a count refuses ``12.5`` and an amount refuses more decimals
than the fen), dates as ISO dates. A formula is refused with an error naming its cell: the
importer takes values, never the result a spreadsheet last cached. A SHA-256 of the file's bytes
lets the importer notice a file that changed between its passes.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from crm_db.csv_import.errors import CellError, FieldError
from crm_db.csv_import.reader import CsvRecord

XLSX_SUFFIXES = (".xlsx", ".xlsm")


def cell_text(value: object) -> str:
    """The text of one cell value as openpyxl gives it; ``CellError`` for what has none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CellError("not a finite number")
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise CellError(f"unsupported cell value ({type(value).__name__})")


class XlsxFile:
    """Iterate to read the workbook once more from the start; ``digest`` is set after a full
    pass. Same interface as ``reader.CsvFile``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest: str | None = None

    def __iter__(self) -> Iterator[CsvRecord | FieldError]:
        self.digest = None
        data = self.path.read_bytes()
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
            yield FieldError(1, "file", f"not a readable XLSX workbook ({type(exc).__name__})")
            return
        try:
            yield from self._records(book.worksheets[0])
        finally:
            book.close()
        self.digest = hashlib.sha256(data).hexdigest()

    def _records(self, sheet: object) -> Iterator[CsvRecord | FieldError]:
        header: list[str] | None = None
        for row in sheet.iter_rows():  # type: ignore[attr-defined]
            fields: list[str] = []
            errors: list[FieldError] = []
            line = 0
            for index, cell in enumerate(row):
                if getattr(cell, "row", None) is None:  # an EmptyCell padding the row
                    fields.append("")
                    continue
                line = cell.row
                name = header[index] if header is not None and index < len(header) else "row"
                if cell.data_type == "f":
                    errors.append(
                        FieldError(
                            line,
                            name,
                            f"cell {cell.coordinate} is a formula; enter the value itself "
                            "(copy, paste values)",
                        )
                    )
                    fields.append("")
                    continue
                try:
                    fields.append(cell_text(cell.value))
                except CellError as exc:
                    errors.append(FieldError(line, name, f"cell {cell.coordinate}: {exc}"))
                    fields.append("")
            if not line or (not errors and not any(f.strip() for f in fields)):
                continue  # an empty row
            width = len(header) if header is not None else 0
            while len(fields) > width and not fields[-1].strip():
                fields.pop()  # empty cells past the header's columns
            if header is None:
                header = [name.strip() for name in fields]
            fields += [""] * (len(header) - len(fields))
            if errors:
                yield from errors
                continue
            yield CsvRecord(line, fields)
