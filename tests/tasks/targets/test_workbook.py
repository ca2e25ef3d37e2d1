"""The XLSX writer: a valid package, numbers stored as numbers with money/litres/percent
formats, text as inline strings, formula-looking text neutralised, sheet names made valid."""

from __future__ import annotations

import io
import zipfile
from xml.etree import ElementTree

from hypothesis import given
from hypothesis import strategies as st

from tasks.targets.workbook import (
    STYLES,
    Sheet,
    column_letter,
    neutralise,
    sheet_names,
    workbook,
)

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _cells(data: bytes, sheet: int = 1) -> dict[str, ElementTree.Element]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        root = ElementTree.fromstring(archive.read(f"xl/worksheets/sheet{sheet}.xml"))
    return {c.attrib["r"]: c for c in root.iterfind(".//m:c", NS)}


def _text(cell: ElementTree.Element) -> str:
    return "".join(t.text or "" for t in cell.iterfind(".//m:t", NS))


def test_numbers_stay_numbers_with_their_formats() -> None:
    data = workbook(
        [
            Sheet(
                "东区片区",
                ["名称", "营业额", "完成率", "客户"],
                [["一号站", 1250000.5, 0.833, 12], ['=HYPERLINK("x")', None, None, 3]],
                [["text", "money", "percent", "count"], ["text", "money", "percent", "count"]],
            ),
            Sheet("Second", ["a"], [["-1+2"]]),
        ]
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/styles.xml"} <= names
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        assert [s.attrib["name"] for s in book.iterfind(".//m:sheet", NS)] == ["东区片区", "Second"]
        styles = archive.read("xl/styles.xml").decode()
        assert 'formatCode="#,##0.00"' in styles and 'formatCode="0.0%"' in styles
    cells = _cells(data)
    assert cells["A1"].attrib["s"] == str(STYLES["header"]) and _text(cells["A1"]) == "名称"
    money = cells["B2"]
    assert "t" not in money.attrib and money.findtext("m:v", namespaces=NS) == "1250000.5"
    assert money.attrib["s"] == str(STYLES["money"])
    assert cells["C2"].attrib["s"] == str(STYLES["percent"])
    assert cells["D2"].findtext("m:v", namespaces=NS) == "12"
    assert "B3" not in cells  # an empty value is an empty cell
    formula = cells["A3"]
    assert formula.attrib["t"] == "inlineStr" and _text(formula) == '\'=HYPERLINK("x")'
    assert formula.find("m:f", NS) is None
    assert _text(_cells(data, 2)["A2"]) == "'-1+2"
    assert workbook([Sheet("x", ["a"], [[1]])]) == workbook([Sheet("x", ["a"], [[1]])])


@given(st.text(max_size=20))
def test_neutralised_text_never_starts_a_formula(text: str) -> None:
    result = neutralise(text)
    assert not result.startswith(("=", "+", "-", "@", "\t", "\r"))
    clean = "".join(ch for ch in text if (ch >= " " or ch in "\t\n\r") and ch not in "\ufffe\uffff")
    assert result in (clean, "'" + clean)  # the content itself is kept
    assert result == clean or clean.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_column_letters_and_sheet_names() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
    names = sheet_names(["a/b", "A/B", "x" * 40, "", "[q]"])
    assert names[0] == "a_b" and names[1] == "A_B (2)"
    assert len(names[2]) == 31 and names[3] == "Sheet" and names[4] == "_q_"
