"""The report workbook, read back with openpyxl: one sheet per view, numbers stored as numbers
with money/litres/count/percent formats, text as text, formula-looking text neutralised, sheet
names made valid."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from tasks.targets.workbook import (
    NUMBER_FORMATS,
    Sheet,
    column_letter,
    neutralise,
    sheet_names,
    workbook,
)


def test_numbers_stay_numbers_with_their_formats() -> None:
    data = workbook(
        [
            Sheet(
                "东区片区",
                ["名称", "营业额", "完成率", "客户", "油量"],
                [
                    ["一号站", 1250000.5, 0.833, 12, 3500.25],
                    ['=HYPERLINK("x")', None, None, 3, None],
                    ["@SUM(A1)", None, None, None, None],
                ],
                [["text", "money", "percent", "count", "litres"]] * 3,
            ),
            Sheet("Second", ["a"], [["-1+2"], ["+1"], ["\tx"]]),
        ]
    )
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["东区片区", "Second"]
    ws = book["东区片区"]
    assert ws["A1"].value == "名称" and ws["A1"].font.b and ws.freeze_panes == "A2"
    money, percent, count, litres = ws["B2"], ws["C2"], ws["D2"], ws["E2"]
    assert money.data_type == "n" and money.value == 1250000.5
    assert money.number_format == NUMBER_FORMATS["money"] == "#,##0.00"
    assert percent.value == 0.833 and percent.number_format == "0.0%"
    assert count.value == 12 and isinstance(count.value, int) and count.number_format == "#,##0"
    assert litres.value == 3500.25 and litres.number_format == "#,##0.000"
    assert ws["A2"].data_type == "s" and ws["A2"].value == "一号站"
    assert ws["B3"].value is None  # an empty value is an empty cell
    formula = ws["A3"]
    assert formula.data_type == "s" and formula.value == '\'=HYPERLINK("x")'
    assert ws["A4"].data_type == "s" and ws["A4"].value == "'@SUM(A1)"
    second = book["Second"]
    assert [second.cell(row=r, column=1).value for r in (2, 3, 4)] == ["'-1+2", "'+1", "'\tx"]
    assert all(second.cell(row=r, column=1).data_type == "s" for r in (2, 3, 4))
    # No cell anywhere is a formula.
    for sheet in book.worksheets:
        assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_formula_looking_header_and_bad_characters() -> None:
    data = workbook([Sheet("x", ["=1+1", "a\x00b"], [[1, "c\x07d"]])])
    ws = load_workbook(io.BytesIO(data))["x"]
    assert ws["A1"].value == "'=1+1" and ws["B1"].value == "ab" and ws["B2"].value == "cd"
    assert ws["A2"].number_format == "General"  # no style given: a plain number


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
    data = workbook([Sheet(n, ["a"], []) for n in ["a/b", "A/B"]])
    assert load_workbook(io.BytesIO(data)).sheetnames == ["a_b", "A_B (2)"]
