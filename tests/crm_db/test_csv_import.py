"""CSV import: exact error lines for every kind of bad input, idempotent upserts, one
transaction per file (a forced failure mid-way leaves nothing), and the ``crm import`` CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, select, text, update
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.csv_import import ImportAborted, ImportOptions, ImportResult, import_csv
from crm_db.csv_import import fields as cell
from crm_db.csv_import.errors import CellError
from crm_db.csv_import.validation import validate_file
from crm_db.enums import CardType, TargetMetric, TargetScope
from crm_db.models import (
    Complaint,
    ComplaintEvent,
    ConsentChange,
    Customer,
    Target,
    TargetVersion,
    Transaction,
)
from crm_db.session import make_engine
from tasks.targets.store import effective_targets
from tests.crm_db.csv_factories import (
    COMPLAINT_HEADER,
    CUSTOMER_HEADER,
    TARGET_HEADER,
    TRANSACTION_HEADER,
    Org,
    complaint_row,
    customer_row,
    insert_fails_for,
    make_org,
    target_row,
    transaction_row,
    write_csv,
)

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))


def run_import(
    engine: Engine, kind: str, path: Path, **options: Any
) -> tuple[ImportResult, list[str]]:
    """Import and return the result with the error lines as the CLI prints them."""
    errors: list[str] = []
    settings: dict[str, Any] = {
        "now": NOW,
        "default_timezone": "Asia/Shanghai",
        "default_locale": "zh-CN",
        **options,
    }
    result = import_csv(
        engine, kind, path, ImportOptions(**settings), lambda e: errors.append(e.format(path.name))
    )
    return result, errors


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def summary(result: ImportResult) -> tuple[int, int, int]:
    return result.counts.inserted, result.counts.updated, result.counts.unchanged


@pytest.fixture
def org(engine: Engine) -> Org:
    return make_org(engine)


# ---------------------------------------------------------------- successful imports, upserts


def test_customers_upsert_is_idempotent_and_updates_changed_rows(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    rows = [
        customer_row("N1"),
        customer_row("N2", email="", phone="", account_manager_id="", locale="", timezone=""),
        customer_row("N3", card_type="company", branch_code="B2", marketing_opt_out="YES"),
    ]
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_HEADER, rows)
    result, errors = run_import(engine, "customers", path)
    assert errors == [] and result.written
    assert summary(result) == (3, 0, 0)

    with engine.connect() as conn:
        n1, n2, n3 = (
            conn.execute(select(Customer).where(Customer.external_id == ext)).one()
            for ext in ("N1", "N2", "N3")
        )
    assert n1.email == "n1@example.com"  # the validator's normalised form: domain lower-cased
    assert n1.card_type == CardType.FLEET and n1.account_manager_id == org.staff_ids["S1"]
    assert n1.first_card_on == date(2026, 2, 3) and n1.phone == "+86 138 1234 5678"
    assert (n2.email, n2.phone, n2.account_manager_id) == (None, None, None)
    assert (n2.locale, n2.timezone) == ("zh-CN", "Asia/Shanghai")  # the defaults
    assert n3.branch_id == org.branch_ids["B2"] and n3.marketing_opt_out is True
    assert n3.survey_opt_out is False

    again, _ = run_import(engine, "customers", path)
    assert summary(again) == (0, 0, 3)

    rows[1] = customer_row("N2", name="改名客户", email="", phone="", account_manager_id="S2")
    rows.append(customer_row("N4", locale="en", timezone="Europe/Berlin"))
    write_csv(path, CUSTOMER_HEADER, rows)
    changed, errors = run_import(engine, "customers", path)
    assert errors == []
    assert summary(changed) == (1, 1, 2)
    with engine.connect() as conn:
        n2_name, n2_manager = conn.execute(
            select(Customer.name, Customer.account_manager_id).where(Customer.external_id == "N2")
        ).one()
    assert (n2_name, n2_manager) == ("改名客户", org.staff_ids["S2"])
    assert count(engine, Customer) == 3 + 4


def test_import_never_withdraws_an_opt_out_and_new_email_clears_bounce(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", CUSTOMER_HEADER, [customer_row("N1")])
    run_import(engine, "customers", path)
    with engine.begin() as conn:  # the customer unsubscribes; later a mail to them bounces
        conn.execute(
            update(Customer)
            .where(Customer.external_id == "N1")
            .values(marketing_opt_out=True, survey_opt_out=True, email_undeliverable=True)
        )
    same, _ = run_import(engine, "customers", path)  # the file still says opt_out = no
    assert summary(same) == (0, 0, 1)

    write_csv(path, CUSTOMER_HEADER, [customer_row("N1", email="new.address@example.com")])
    changed, _ = run_import(engine, "customers", path)
    assert summary(changed) == (0, 1, 0)
    with engine.connect() as conn:
        row = conn.execute(
            select(
                Customer.email,
                Customer.marketing_opt_out,
                Customer.survey_opt_out,
                Customer.email_undeliverable,
            ).where(Customer.external_id == "N1")
        ).one()
    assert tuple(row) == ("new.address@example.com", True, True, False)


def test_every_opt_out_an_import_records_is_one_audit_row(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        CUSTOMER_HEADER,
        [customer_row("N1"), customer_row("N2", marketing_opt_out="yes")],
    )
    run_import(engine, "customers", path)
    write_csv(
        path,
        CUSTOMER_HEADER,
        [customer_row("N1", survey_opt_out="yes"), customer_row("N2", marketing_opt_out="yes")],
    )
    run_import(engine, "customers", path)
    run_import(engine, "customers", path)  # the same file again: no change, no row
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Customer.external_id,
                ConsentChange.field,
                ConsentChange.old_value,
                ConsentChange.new_value,
                ConsentChange.source,
            )
            .join(Customer, Customer.id == ConsentChange.customer_id)
            .order_by(ConsentChange.id)
        ).all()
        times = conn.execute(select(ConsentChange.changed_at)).scalars().all()
    assert [tuple(r) for r in rows] == [
        ("N2", "marketing_opt_out", None, "true", "import"),
        ("N1", "survey_opt_out", "false", "true", "import"),
    ]
    assert all(t is not None for t in times)


def test_transactions_convert_exactly_to_fen_and_ml(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    rows = [
        transaction_row("T1", amount_cny="0.10", volume_litres="0.001"),
        transaction_row("T2", amount_cny="0.20", volume_litres=""),
        transaction_row("T3", amount_cny="12.500", volume_litres="40", kind="recharge"),
        transaction_row("T4", customer_id="C2", branch_code="B2", amount_cny="99999999.99"),
    ]
    path = write_csv(tmp_path / "t.csv", TRANSACTION_HEADER, rows)
    result, errors = run_import(engine, "transactions", path)
    assert errors == [] and summary(result) == (4, 0, 0)
    with engine.connect() as conn:
        found = {
            ext: (fen, ml, customer, branch)
            for ext, fen, ml, customer, branch in conn.execute(
                select(
                    Transaction.external_id,
                    Transaction.amount_fen,
                    Transaction.volume_ml,
                    Transaction.customer_id,
                    Transaction.branch_id,
                )
            )
        }
    c1, c2, b1, b2 = (org.customer_ids["C1"], org.customer_ids["C2"], *org.branch_ids.values())
    assert found == {
        "T1": (10, 1, c1, b1),
        "T2": (20, 0, c1, b1),
        "T3": (1250, 40_000, c1, b1),
        "T4": (9_999_999_999, 45_125, c2, b2),
    }
    assert summary(run_import(engine, "transactions", path)[0]) == (0, 0, 4)


# Complaint imports (lifecycle times, receipts): tests/crm_db/test_csv_import_complaints.py


def test_targets_convert_display_units_and_version_each_import(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    rows = [
        target_row(),  # branch B1 revenue 125000.50 CNY
        target_row(scope="region", scope_code="R1", metric="new_customers_fleet", value="12"),
        target_row(scope="staff", scope_code="S9", metric="volume_ml", value="1500.5"),
        target_row(period="2026-04"),
        target_row(scope="company", scope_code="company", metric="first_recharge_fen", value="9"),
    ]
    path = write_csv(tmp_path / "targets.csv", TARGET_HEADER, rows)
    result, errors = run_import(engine, "targets", path)
    assert errors == [] and summary(result) == (5, 0, 0)
    with engine.connect() as conn:
        found = {
            (period, scope, scope_id, metric): value
            for period, scope, scope_id, metric, value in conn.execute(
                select(Target.period, Target.scope, Target.scope_id, Target.metric, Target.value)
            )
        }
    assert found == {
        ("2026-03", TargetScope.BRANCH, org.branch_ids["B1"], TargetMetric.REVENUE_FEN): 12_500_050,
        ("2026-03", TargetScope.REGION, org.region_ids["R1"], TargetMetric.NEW_CUSTOMERS_FLEET): 12,
        ("2026-03", TargetScope.STAFF, org.staff_ids["S9"], TargetMetric.VOLUME_ML): 1_500_500,
        ("2026-04", TargetScope.BRANCH, org.branch_ids["B1"], TargetMetric.REVENUE_FEN): 12_500_050,
        ("2026-03", TargetScope.COMPANY, 0, TargetMetric.FIRST_RECHARGE_FEN): 900,
    }
    rows[0] = target_row(value="130000")
    write_csv(path, TARGET_HEADER, rows)
    assert summary(run_import(engine, "targets", path)[0]) == (0, 1, 4)
    # A new version holds only the changed row; the first version is still readable.
    assert count(engine, Target) == 6
    assert summary(run_import(engine, "targets", path)[0]) == (0, 0, 5)
    with engine.connect() as conn:
        versions = conn.execute(
            select(TargetVersion.id, TargetVersion.source, TargetVersion.source_name).order_by(
                TargetVersion.id
            )
        ).all()
        assert [(source, name) for _, source, name in versions] == [
            ("import", "targets.csv"),
            ("import", "targets.csv"),
        ]  # the unchanged re-import made no version
        key = ("2026-03", TargetScope.BRANCH, org.branch_ids["B1"], TargetMetric.REVENUE_FEN)
        assert effective_targets(conn, ["2026-03"], versions[0][0])[key] == 12_500_050
        assert effective_targets(conn, ["2026-03"], None)[key] == 13_000_000


def test_dry_run_counts_then_rolls_back(engine: Engine, org: Org, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", TRANSACTION_HEADER, [transaction_row("T1")])
    result, errors = run_import(engine, "transactions", path, dry_run=True)
    assert errors == [] and summary(result) == (1, 0, 0) and not result.written
    assert count(engine, Transaction) == 0


# ---------------------------------------------------------------- every error, exact lines


def test_customer_file_reports_every_error_and_writes_nothing(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    rows = [
        customer_row("N1"),  # line 2
        customer_row("N2", email="zhang.san@@example.com", phone="call me"),  # 3
        customer_row("N3", name="张\n三"),  # 4-5: a quoted line break
        customer_row("N4", card_type="gold", branch_code="B99"),  # 6
        customer_row("N5", account_manager_id="S404"),  # 7
        customer_row("N6", account_manager_id="S9", locale="fr", timezone="Mars/Base"),  # 8
        customer_row("N7", first_card_on="2026-02-30", marketing_opt_out="maybe"),  # 9
        customer_row("N8", name="bell\x07", first_card_on="03/02/2026"),  # 10
        customer_row("N1", name="again"),  # 11
        customer_row("N9", name=" ", card_type=""),  # 12
        customer_row("N10", name="\u202eevil", email="x@example.test"),  # 13
        customer_row("N11", name="o\rk"),  # 14
    ]
    path = write_csv(tmp_path / "f.csv", CUSTOMER_HEADER, rows, quote_all=True)
    result, errors = run_import(engine, "customers", path)
    assert errors == [
        "f.csv:3: email: not a valid email address",
        "f.csv:3: phone: not a valid phone number (5-20 digits; only + ( ) - . and spaces besides)",
        "f.csv:4: name: contains a line break (U+000A)",
        "f.csv:6: card_type: unknown value (allowed: personal, company, fleet)",
        "f.csv:6: branch_code: unknown branch code",
        "f.csv:7: account_manager_id: unknown account manager (no staff with this external id)",
        "f.csv:8: locale: unknown locale (allowed: zh-CN, en)",
        "f.csv:8: timezone: not an IANA time zone (e.g. Asia/Shanghai)",
        "f.csv:8: account_manager_id: account manager has left the company (inactive staff)",
        "f.csv:9: marketing_opt_out: not a boolean (use true/false, 1/0 or yes/no)",
        "f.csv:9: first_card_on: not a calendar date",
        "f.csv:10: name: contains a control character (U+0007)",
        "f.csv:10: first_card_on: not a date (expected YYYY-MM-DD)",
        "f.csv:11: external_id: duplicate external_id (first on line 2)",
        "f.csv:12: name: is required",
        "f.csv:12: card_type: is required (one of: personal, company, fleet)",
        "f.csv:13: name: contains a control character (U+202E)",
        "f.csv:13: email: not a valid email address",  # .test is reserved outside demo mode
        "f.csv:14: name: contains a line break (U+000D)",
    ]
    assert not result.ok and not result.written and result.errors == len(errors)
    assert count(engine, Customer) == 3  # only the factory's customers
    assert not any("zhang" in line or "call me" in line for line in errors)  # no personal data


def test_demo_mode_accepts_the_reserved_test_domain(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "c.csv", CUSTOMER_HEADER, [customer_row("N1", email="li.si@example.test")]
    )
    result, errors = run_import(engine, "customers", path, allow_test_email_domain=True)
    assert errors == [] and summary(result) == (1, 0, 0)


def test_transaction_file_reports_every_error(engine: Engine, org: Org, tmp_path: Path) -> None:
    rows: list[Any] = [
        transaction_row("T1"),  # 2
        transaction_row("T2", amount_cny="-5"),  # 3
        transaction_row("T3", amount_cny="abc"),  # 4
        transaction_row("T4", amount_cny="12.345", volume_litres="1.2345"),  # 5
        transaction_row("T5", customer_id="C404", kind="refund"),  # 6
        transaction_row("T6", occurred_on="2026-13-01", amount_cny="1,000.00"),  # 7
        transaction_row("T1"),  # 8
        ["T7", "C1", "B1", "purchase", "1.00", "2026-03-01"],  # 9: a cell short
        transaction_row("T8", amount_cny="1e3", volume_litres="-0.5"),  # 10
        transaction_row("T9", amount_cny="", occurred_on="1899-12-31"),  # 11
        transaction_row("T10", amount_cny="1" * 16),  # 12
    ]
    path = write_csv(tmp_path / "f.csv", TRANSACTION_HEADER, rows)
    result, errors = run_import(engine, "transactions", path)
    not_a_number = "not a number (digits with an optional decimal point, e.g. 1234.56)"
    assert errors == [
        "f.csv:3: amount_cny: must not be negative",
        f"f.csv:4: amount_cny: {not_a_number}",
        "f.csv:5: amount_cny: more than 2 decimal places (amounts are exact to the fen)",
        "f.csv:5: volume_litres: more than 3 decimal places (volumes are exact to the millilitre)",
        "f.csv:6: customer_id: unknown customer external id",
        "f.csv:6: kind: unknown value (allowed: recharge, purchase)",
        f"f.csv:7: amount_cny: {not_a_number}",
        "f.csv:7: occurred_on: not a calendar date",
        "f.csv:8: external_id: duplicate external_id (first on line 2)",
        "f.csv:9: row: has 6 fields, the header has 7",
        f"f.csv:10: amount_cny: {not_a_number}",
        "f.csv:10: volume_litres: must not be negative",
        "f.csv:11: amount_cny: is required",
        "f.csv:11: occurred_on: year outside 1900-2100",
        "f.csv:12: amount_cny: too large",
    ]
    assert result.errors == len(errors) and count(engine, Transaction) == 0


def test_complaint_file_reports_every_error(engine: Engine, org: Org, tmp_path: Path) -> None:
    rows = [
        complaint_row("K1"),  # 2
        complaint_row("K2", severity="urgent", status="open"),  # 3
        complaint_row("K3", received_at="2026-03-01", assignee_id="S9"),  # 4
        complaint_row("K4", category="", received_at="2026-03-01T25:00"),  # 5
        complaint_row("K5", customer_id="C404", description="a\nlong\nstory"),  # 6-8
        complaint_row("K6", description="escape \x1b[31m"),  # 9
        complaint_row("K7", branch_code="B99", product="x" * 81),  # 10
    ]
    path = write_csv(tmp_path / "f.csv", COMPLAINT_HEADER, rows)
    result, errors = run_import(engine, "complaints", path)
    assert errors == [
        "f.csv:3: severity: unknown value (allowed: low, normal, high, critical)",
        "f.csv:3: status: unknown value (allowed: new, acknowledged, in_progress, "
        "waiting_on_customer, resolved, verified, closed)",
        "f.csv:4: assignee_id: assignee has left the company (inactive staff)",
        "f.csv:4: received_at: not a date-time (expected YYYY-MM-DDTHH:MM[:SS][+08:00]; "
        "no offset = local time)",
        "f.csv:5: category: is required",
        "f.csv:5: received_at: not a valid time of day or offset",
        "f.csv:6: customer_id: unknown customer external id",
        "f.csv:9: description: contains a control character (U+001B)",
        "f.csv:10: branch_code: unknown branch code",
        "f.csv:10: product: longer than 80 characters",
    ]
    assert count(engine, Complaint) == 0 and count(engine, ComplaintEvent) == 0


def test_target_file_reports_every_error(engine: Engine, org: Org, tmp_path: Path) -> None:
    rows = [
        target_row(),  # 2
        target_row(period="2026-3", scope="team"),  # 3
        target_row(metric="profit"),  # 4
        target_row(scope="staff", scope_code="S404"),  # 5
        target_row(scope="region", scope_code="B1"),  # 6
        target_row(metric="new_customers_fleet", value="2.5"),  # 7
        target_row(metric="volume_ml", value="-1"),  # 8
        target_row(period="2026-05", value="10.001"),  # 9
        target_row(value="1"),  # 10: same period/scope/code/metric as line 2
        target_row(period="2026-13", metric="new_customers_company", value="-3"),  # 11
        target_row(scope="company", scope_code="HQ"),  # 12
    ]
    path = write_csv(tmp_path / "f.csv", TARGET_HEADER, rows)
    result, errors = run_import(engine, "targets", path)
    assert errors == [
        "f.csv:3: period: not a month (expected YYYY-MM)",
        "f.csv:3: scope: unknown value (allowed: company, region, branch, staff)",
        "f.csv:4: metric: unknown value (allowed: new_customers_personal, new_customers_company, "
        "new_customers_fleet, volume_ml, revenue_fen, recharge_fen, first_recharge_fen, "
        "new_customer_volume_ml)",
        "f.csv:5: scope_code: unknown staff external id",
        "f.csv:6: scope_code: unknown region code",
        "f.csv:7: value: not a whole number",
        "f.csv:8: value: must not be negative",
        "f.csv:9: value: more than 2 decimal places (amounts are given in CNY, exact to the fen)",
        "f.csv:10: row: duplicate period/scope/scope_code/metric (first on line 2)",
        "f.csv:11: period: not a month (expected YYYY-MM)",
        "f.csv:11: value: must not be negative",
        "f.csv:12: scope_code: the company's scope_code is 'company'",
    ]
    assert count(engine, Target) == 0


# ---------------------------------------------------------------- file structure


def test_missing_columns_are_one_error_on_line_1(engine: Engine, org: Org, tmp_path: Path) -> None:
    header = [c for c in CUSTOMER_HEADER if c not in ("email", "phone")]
    path = write_csv(tmp_path / "f.csv", header, [customer_row("N1", name="x" * 300)])
    result, errors = run_import(engine, "customers", path)
    # A bad header stops there: the rows cannot be read against it.
    assert errors == ["f.csv:1: header: missing required columns: email, phone"]
    assert not result.ok


def test_unknown_and_duplicate_columns(engine: Engine, org: Org, tmp_path: Path) -> None:
    header = [*TRANSACTION_HEADER, "notes", "kind"]
    path = write_csv(tmp_path / "f.csv", header, [])
    _, errors = run_import(engine, "transactions", path)
    assert errors == [
        "f.csv:1: header: unknown columns: notes (expected: external_id, customer_id, "
        "branch_code, kind, amount_cny, volume_litres, occurred_on)",
        "f.csv:1: header: duplicate columns: kind",
    ]


def test_file_without_header_is_not_echoed(engine: Engine, org: Org, tmp_path: Path) -> None:
    row = customer_row("N1", email="wang.wu@example.com")
    path = tmp_path / "f.csv"
    path.write_text(",".join(row[c] for c in CUSTOMER_HEADER) + "\n")
    _, errors = run_import(engine, "customers", path)
    assert errors == [
        "f.csv:1: header: no header line: expected the columns " + ", ".join(CUSTOMER_HEADER)
    ]


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\r\n\n", b",,,\n"])
def test_empty_file_is_an_error(engine: Engine, org: Org, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    result, errors = run_import(engine, "targets", path)
    assert errors == [
        "f.csv:1: file: empty file: expected a header line (period, scope, scope_code, metric, "
        "value)"
    ]
    assert not result.ok


def test_header_only_file_succeeds_with_nothing_to_import(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "f.csv", COMPLAINT_HEADER, [], bom=True)
    result, errors = run_import(engine, "complaints", path)
    assert errors == [] and result.ok and result.rows == 0 and not result.written


def test_bom_crlf_header_order_and_blank_lines(engine: Engine, org: Org, tmp_path: Path) -> None:
    header = list(reversed(TRANSACTION_HEADER))
    rows: list[Any] = [
        transaction_row("T1"),
        ["", "", "", "", "", "", ""],  # spreadsheets export empty rows: skipped
        transaction_row("T2", kind="multi\nline"),  # spans lines 4-5 (CRLF kept inside quotes)
        transaction_row("T3", kind="bad"),  # line 6
    ]
    path = write_csv(tmp_path / "f.csv", header, rows, bom=True, newline="\r\n")
    _, errors = run_import(engine, "transactions", path)
    assert errors == [
        "f.csv:4: kind: unknown value (allowed: recharge, purchase)",
        "f.csv:6: kind: unknown value (allowed: recharge, purchase)",
    ]
    write_csv(
        path, header, [transaction_row("T1"), transaction_row("T2")], bom=True, newline="\r\n"
    )
    result, errors = run_import(engine, "transactions", path)
    assert errors == [] and summary(result) == (2, 0, 0)


def test_non_utf8_bytes_name_line_and_offset(engine: Engine, org: Org, tmp_path: Path) -> None:
    header = ",".join(CUSTOMER_HEADER).encode() + b"\n"
    good = ",".join(customer_row("N1")[c] for c in CUSTOMER_HEADER).encode() + b"\n"
    gbk = customer_row("N2", name="张三")
    gbk_line = ",".join(gbk[c] for c in CUSTOMER_HEADER).encode("gbk") + b"\n"
    late = ",".join(customer_row("N3", card_type="gold")[c] for c in CUSTOMER_HEADER).encode()
    path = tmp_path / "f.csv"
    path.write_bytes(header + good + gbk_line + late + b"\n")
    offset = len(header) + len(good) + gbk_line.index("张三".encode("gbk"))
    result, errors = run_import(engine, "customers", path)
    assert errors == [
        f"f.csv:3: encoding: not UTF-8: invalid byte 0xd5 at byte offset {offset} of the file "
        "(save it as UTF-8)",
        "f.csv:4: card_type: unknown value (allowed: personal, company, fleet)",  # still checked
    ]
    assert not result.ok and count(engine, Customer) == 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'T1,C1,B1,purchase,"1.00"x,,2026-03-01\n',
            "f.csv:2: row: malformed CSV: ',' expected after '\"'",
        ),
        (
            b'T1,C1,B1,purchase,1.00,,2026-03-01\nT2,C1,"B1\n',
            "f.csv:3: row: malformed CSV: unexpected end of data",
        ),
        (
            b"T1,C1,B1,purchase,1.00,,2026-03-01\rT2,C1,B1,purchase,1.00,,2026-03-01\n",
            "f.csv:2: row: malformed CSV: a carriage return inside an unquoted field (quote the "
            "field, or use LF/CRLF line endings)",
        ),
    ],
)
def test_malformed_csv_is_reported_not_raised(
    engine: Engine, org: Org, tmp_path: Path, body: bytes, expected: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(",".join(TRANSACTION_HEADER).encode() + b"\n" + body)
    _, errors = run_import(engine, "transactions", path)
    assert errors == [expected]


# ---------------------------------------------------------------- one transaction per file


@pytest.fixture
def failing_transaction_insert(engine: Engine) -> Iterator[str]:
    """A real database failure: a trigger that rejects one row's insert."""
    with insert_fails_for(engine, "transactions", "T0045"):
        yield "T0045"


def test_failure_mid_way_writes_nothing(
    engine: Engine, org: Org, tmp_path: Path, failing_transaction_insert: str
) -> None:
    rows = [transaction_row(f"T{n:04d}") for n in range(1, 51)]
    path = write_csv(tmp_path / "t.csv", TRANSACTION_HEADER, rows)
    inserts: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO transactions"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        with pytest.raises(ImportAborted, match="forced failure") as raised:
            run_import(engine, "transactions", path, chunk_size=10)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert len(inserts) == 5  # chunks 1-4 were written before chunk 5 failed...
    assert count(engine, Transaction) == 0  # ...and all were rolled back
    assert "T0045" not in str(raised.value) and "[parameters" not in str(raised.value)


def test_file_changed_between_passes_rolls_back(
    engine: Engine, org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "t.csv", TRANSACTION_HEADER, [transaction_row("T1")])

    def validate_then_edit(*args: Any, **kwargs: Any) -> Any:
        summary = validate_file(*args, **kwargs)
        with path.open("a") as stream:  # another process appends while we validate
            stream.write("T2,C1,B1,purchase,1.00,,2026-03-01\n")
        return summary

    monkeypatch.setattr("crm_db.csv_import.pipeline.validate_file", validate_then_edit)
    with pytest.raises(ImportAborted, match="file changed"):
        run_import(engine, "transactions", path)
    assert count(engine, Transaction) == 0


# ---------------------------------------------------------------- pure cell parsers


@given(st.integers(min_value=0, max_value=10**15))
def test_amounts_convert_exactly(fen: int) -> None:
    text_value = f"{fen // 100}.{fen % 100:02d}"
    assert cell.scaled_decimal(text_value, places=2, what="fen") == fen
    assert cell.scaled_decimal(text_value + "000", places=2, what="fen") == fen


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=9))
def test_a_third_decimal_digit_is_refused(fen: int, extra: int) -> None:
    with pytest.raises(CellError, match="more than 2 decimal places"):
        cell.scaled_decimal(f"{fen // 100}.{fen % 100:02d}{extra}", places=2, what="fen")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T09:30:00+08:00", datetime(2026, 3, 1, 1, 30, tzinfo=UTC)),
        ("2026-03-01T09:30Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01 09:30:00.123456", datetime(2026, 3, 1, 1, 30, 0, 123456, tzinfo=UTC)),
        ("2026-07-01T12:00:00-0400", datetime(2026, 7, 1, 16, 0, tzinfo=UTC)),
    ],
)
def test_datetimes_with_or_without_offset(value: str, expected: datetime) -> None:
    assert cell.iso_datetime(value, "Asia/Shanghai") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("TRUE", True), ("Yes", True), ("1", True), ("no", False), ("0", False), ("", False)],
)
def test_booleans(value: str, expected: bool) -> None:
    assert cell.boolean(value) is expected


@pytest.mark.parametrize("value", ["2026-00", "2026-13", "202603", "26-03", "2026-03-01"])
def test_bad_periods(value: str) -> None:
    with pytest.raises(CellError):
        cell.period(value)


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, Any]]:
    from crm_cli.main import app

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_MODE", "production")  # .test addresses refused, as in production
    monkeypatch.setenv("CRM_SECRET_KEY", "x" * 40)
    reset_settings_cache()
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    engine = make_engine(url)
    make_org(engine)
    engine.dispose()
    yield runner, app
    reset_settings_cache()


def test_cli_imports_and_reimports(cli_db: tuple[CliRunner, Any], tmp_path: Path) -> None:
    runner, app = cli_db
    path = write_csv(
        tmp_path / "customers.csv", CUSTOMER_HEADER, [customer_row("N1"), customer_row("N2")]
    )
    first = runner.invoke(app, ["import", "customers", str(path)])
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{path}: customers: inserted 2, updated 0, unchanged 0\n"
    second = runner.invoke(app, ["import", "customers", str(path)])
    assert second.stdout == f"{path}: customers: inserted 0, updated 0, unchanged 2\n"
    dry = runner.invoke(app, ["import", "customers", "--dry-run", str(path)])
    assert "dry run, rolled back: would have inserted 0, updated 0, unchanged 2" in dry.stdout


def test_cli_prints_every_error_without_personal_data(
    cli_db: tuple[CliRunner, Any], tmp_path: Path
) -> None:
    runner, app = cli_db
    rows = [
        customer_row("N1", email="wang.wu@example.test"),
        customer_row("N2", phone="13812345678 ext. 9", first_card_on="2026/01/01"),
    ]
    path = write_csv(tmp_path / "bad.csv", CUSTOMER_HEADER, rows)
    result = runner.invoke(app, ["import", "customers", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:2: email: not a valid email address",
        f"{path}:3: phone: not a valid phone number (5-20 digits; only + ( ) - . and spaces "
        "besides)",
        f"{path}:3: first_card_on: not a date (expected YYYY-MM-DD)",
        f"{path}: 3 error(s) in customers file; nothing was imported",
    ]
    assert "wang.wu" not in result.output and "13812345678" not in result.output


@pytest.mark.parametrize(
    ("content", "exit_code", "expected"),
    [
        (b"", 1, ":1: file: empty file"),
        (
            b"\xff\xfe" + "period".encode("utf-16-le"),
            1,
            ":1: encoding: not UTF-8: invalid byte 0xff",
        ),
        (b"period,scope,scope_code,metric,value\r\n", 0, ": header only, nothing to import"),
    ],
)
def test_cli_file_level_outcomes(
    cli_db: tuple[CliRunner, Any], tmp_path: Path, content: bytes, exit_code: int, expected: str
) -> None:
    runner, app = cli_db
    path = tmp_path / "targets.csv"
    path.write_bytes(content)
    result = runner.invoke(app, ["import", "targets", str(path)])
    assert result.exit_code == exit_code, result.output
    assert f"{path}{expected}" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_database_failure_exits_3_and_writes_nothing(
    cli_db: tuple[CliRunner, Any], tmp_path: Path
) -> None:
    runner, app = cli_db
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER forced_failure BEFORE INSERT ON targets "
                "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
            )
        )
    path = write_csv(tmp_path / "targets.csv", TARGET_HEADER, [target_row()])
    result = runner.invoke(app, ["import", "targets", str(path)])
    assert result.exit_code == 3
    assert result.stderr == (
        f"{path}: import failed: database error while writing, nothing written: "
        "IntegrityError: forced failure\n"
    )
    assert count(engine, Target) == 0
    engine.dispose()


def test_cli_columns_lists_each_kind(cli_db: tuple[CliRunner, Any]) -> None:
    runner, app = cli_db
    result = runner.invoke(app, ["import", "columns"])
    assert result.exit_code == 0
    for kind in ("customers", "transactions", "complaints", "targets"):
        assert f"### {kind}\n\n| column | value | format |" in result.stdout
    assert "| `amount_cny` | required |" in result.stdout


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("１２３", "not a number"),  # full-width digits: ASCII only, no silent conversion
        ("5.", "not a number"),
        ("+5", "not a number"),
        ("NaN", "not a number"),
        ("-0.01", "must not be negative"),
        ("0.001", "more than 2 decimal places"),
    ],
)
def test_bad_amounts(value: str, problem: str) -> None:
    with pytest.raises(CellError, match=problem):
        cell.scaled_decimal(value, places=2, what="fen")
