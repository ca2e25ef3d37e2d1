"""A minimal XLSX (Office Open XML spreadsheet) writer on the standard library.

openpyxl is not in the project's locks; the reports need only what this writes: several sheets,
a bold header row, numbers stored as numbers with a number format (money, litres, counts,
percentages) and text stored as inline strings. Text that a spreadsheet could take for a formula
(starting with ``=``, ``+``, ``-``, ``@``, or a tab / carriage return) is neutralised with a
leading apostrophe (OWASP's rule for CSV injection, which applies again once a sheet is saved
as CSV). Pure: values in, bytes out.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

Value = str | int | float | None

# Style ids in styles.xml's cellXfs, by name.
STYLES = {"text": 0, "header": 1, "money": 2, "litres": 3, "count": 4, "percent": 5}
_NUMBER_FORMATS = {164: "#,##0.00", 165: "#,##0.000", 166: "#,##0", 167: "0.0%"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BAD_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")
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
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


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


def _cell(ref: str, value: Value, style: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return f'<c r="{ref}" s="{style}"><v>{value!r}</v></c>'
    text = escape(neutralise(str(value)))
    return f'<c r="{ref}" t="inlineStr" s="{style}"><is><t xml:space="preserve">{text}</t></is></c>'


def _sheet_xml(sheet: Sheet) -> str:
    lines = []
    header = "".join(
        _cell(f"{column_letter(i)}1", name, STYLES["header"]) for i, name in enumerate(sheet.header)
    )
    lines.append(f'<row r="1">{header}</row>')
    for r, row in enumerate(sheet.rows, start=2):
        styles = [STYLES[name] for name in sheet.styles[r - 2]] if r - 2 < len(sheet.styles) else []
        cells = "".join(
            _cell(
                f"{column_letter(i)}{r}",
                value,
                styles[i] if i < len(styles) and not isinstance(value, str) else STYLES["text"],
            )
            for i, value in enumerate(row)
        )
        lines.append(f'<row r="{r}">{cells}</row>')
    widths = "".join(
        f'<col min="{i + 1}" max="{i + 1}" width="{22 if i == 0 else 14}" customWidth="1"/>'
        for i in range(len(sheet.header))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
        'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
        f"<cols>{widths}</cols><sheetData>{''.join(lines)}</sheetData></worksheet>"
    )


_STYLES_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    f'<numFmts count="{len(_NUMBER_FORMATS)}">'
    + "".join(
        f'<numFmt numFmtId="{i}" formatCode="{escape(f)}"/>' for i, f in _NUMBER_FORMATS.items()
    )
    + "</numFmts>"
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="6">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="167" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs></styleSheet>"
)


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """The .xlsx file of ``sheets`` (at least one)."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    names = sheet_names([s.name for s in sheets])
    n = len(sheets)
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, n + 1)
        )
        + "</Types>"
    )
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    )
    book = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
        + "".join(
            f'<sheet name="{escape(name, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(names, start=1)
        )
        + "</sheets></workbook>"
    )
    book_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/'
            f'2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        + f'<Relationship Id="rId{n + 1}" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # Fixed timestamps: the same workbook is the same bytes (idempotent attachments).
        def put(name: str, text: str) -> None:
            info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))

        put("[Content_Types].xml", content_types)
        put("_rels/.rels", root_rels)
        put("xl/workbook.xml", book)
        put("xl/_rels/workbook.xml.rels", book_rels)
        put("xl/styles.xml", _STYLES_XML)
        for i, sheet in enumerate(sheets, start=1):
            put(f"xl/worksheets/sheet{i}.xml", _sheet_xml(sheet))
    return buffer.getvalue()
