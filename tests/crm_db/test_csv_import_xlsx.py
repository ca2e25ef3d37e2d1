"""``crm import targets FILE.xlsx``: real workbooks built with openpyxl go through the same
validation as CSV (``FILE:ROW: field: problem``, all or nothing, one version per changing
import); floats accepted when the column's parser takes their exact decimal; formulas refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from crm_db.csv_import.errors import CellError
from crm_db.csv_import.xlsx_reader import cell_text
from crm_db.enums import TargetMetric, TargetScope
from crm_db.models import Target, TargetVersion
from tests.crm_db.csv_factories import TARGET_HEADER, Org, make_org
from tests.crm_db.test_csv_import import cli_db, run_import, summary

__all__ = ["cli_db"]  # the CLI fixture, shared with the CSV tests


@pytest.fixture
def org(engine: Engine) -> Org:
    return make_org(engine)


def write_xlsx(path: Path, rows: list[list[Any]], header: list[str] = TARGET_HEADER) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _targets(engine: Engine) -> dict[tuple[Any, ...], int]:
    with engine.connect() as conn:
        return {
            (p, s, i, m): v
            for p, s, i, m, v in conn.execute(
                select(Target.period, Target.scope, Target.scope_id, Target.metric, Target.value)
            )
        }


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(TargetVersion)) or 0


def test_xlsx_targets_import_numbers_and_version_once(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_xlsx(
        tmp_path / "targets.xlsx",
        [
            ["2026-03", "branch", "B1", "revenue_fen", 125000.5],  # a float with a fraction
            ["2026-03", "region", "R1", "new_customers_fleet", 12.0],  # Excel's float for 12
            ["2026-03", "staff", "S9", "volume_ml", 1500],  # an integer cell
            [None, None, None, None, None],  # an empty row is skipped
            ["2026-03", "company", "company", "first_recharge_fen", "9"],  # text
        ],
    )
    versions = _versions(engine)
    result, errors = run_import(engine, "targets", path)
    assert errors == [] and summary(result) == (4, 0, 0)
    assert _targets(engine) == {
        ("2026-03", TargetScope.BRANCH, org.branch_ids["B1"], TargetMetric.REVENUE_FEN): 12_500_050,
        ("2026-03", TargetScope.REGION, org.region_ids["R1"], TargetMetric.NEW_CUSTOMERS_FLEET): 12,
        ("2026-03", TargetScope.STAFF, org.staff_ids["S9"], TargetMetric.VOLUME_ML): 1_500_000,
        ("2026-03", TargetScope.COMPANY, 0, TargetMetric.FIRST_RECHARGE_FEN): 900,
    }
    assert _versions(engine) == versions + 1
    assert summary(run_import(engine, "targets", path)[0]) == (0, 0, 4)
    assert _versions(engine) == versions + 1  # an unchanged re-import makes no version
    with engine.connect() as conn:
        name = conn.scalar(select(TargetVersion.source_name).order_by(TargetVersion.id.desc()))
    assert name == "targets.xlsx"


def test_xlsx_errors_name_the_row_and_nothing_is_written(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(TARGET_HEADER)
    sheet.append(["2026-03", "branch", "B1", "revenue_fen", 100])  # row 2: valid
    sheet.append(["2026-03", "branch", "B1", "new_customers_personal", 12.5])  # row 3
    sheet.append(["2026-03", "branch", "B1", "volume_ml", "=1+1"])  # row 4: a formula
    sheet.append(["2026-03", "branch", "NOPE", "revenue_fen", 0.125])  # row 5
    sheet.append(["2026-03", "region", "R1", "volume_ml", 1.25])  # row 6: valid
    path = tmp_path / "bad.xlsx"
    book.save(path)
    before = _targets(engine)
    result, errors = run_import(engine, "targets", path)
    assert not result.ok and not result.written
    assert [e.split(": ")[:2] for e in errors] == [
        ["bad.xlsx:3", "value"],
        ["bad.xlsx:4", "value"],
        ["bad.xlsx:5", "scope_code"],
        ["bad.xlsx:5", "value"],
    ]
    assert "not a whole number" in errors[0] and "more than 2 decimal places" in errors[3]
    assert "cell E4 is a formula" in errors[1]
    assert _targets(engine) == before


def test_cell_text() -> None:
    assert [cell_text(v) for v in (None, 1200.0, 1200, 1234.56, -3.0, "x", True)] == [
        "",
        "1200",
        "1200",
        "1234.56",
        "-3",
        "x",
        "TRUE",
    ]
    with pytest.raises(CellError):
        cell_text(float("nan"))


def test_cli_imports_xlsx_and_refuses_xlsx_for_other_kinds(
    cli_db: tuple[CliRunner, Any], tmp_path: Path
) -> None:
    runner, app = cli_db
    path = write_xlsx(tmp_path / "t.xlsx", [["2026-03", "branch", "B1", "revenue_fen", 10]])
    result = runner.invoke(app, ["import", "targets", str(path)])
    assert result.exit_code == 0, result.output
    assert "inserted 1, updated 0, unchanged 0" in result.output
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    result = runner.invoke(app, ["import", "targets", str(broken)])
    assert result.exit_code == 1 and f"{broken}:1: file: not a readable XLSX" in result.output
    result = runner.invoke(app, ["import", "customers", str(path)])
    assert result.exit_code == 1 and "customers are imported from CSV only" in result.output
