"""Plain factory functions for the CSV import tests: a small organisation in the database and
CSV files written from rows of strings."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, insert

from crm_db.enums import AbcClass, CardType, ContactChannel, RevisitStatus, StaffRole
from crm_db.models import Branch, Customer, Region, Revisit, Staff


@dataclass(frozen=True)
class Org:
    region_ids: dict[str, int]
    branch_ids: dict[str, int]
    staff_ids: dict[str, int]
    customer_ids: dict[str, int]


def make_org(engine: Engine, *, customers: int = 3) -> Org:
    """Regions R1, R2; branches B1 (R1), B2 (R2); staff S1 and S2 (active account managers),
    S9 (left the company); customers C1..Cn at B1 managed by S1."""
    with engine.begin() as conn:
        region_ids = {
            code: conn.execute(
                insert(Region).values(code=code, name=f"片区 {code}").returning(Region.id)
            ).scalar_one()
            for code in ("R1", "R2")
        }
        branch_ids = {
            code: conn.execute(
                insert(Branch)
                .values(code=code, name=f"油站 {code}", region_id=region_ids[region])
                .returning(Branch.id)
            ).scalar_one()
            for code, region in (("B1", "R1"), ("B2", "R2"))
        }
        staff_ids = {
            ext: conn.execute(
                insert(Staff)
                .values(
                    external_id=ext,
                    name=f"员工 {ext}",
                    email=f"{ext.lower()}@example.test",
                    role=StaffRole.ACCOUNT_MANAGER,
                    branch_id=branch_ids["B1"],
                    active=active,
                    left_on=None if active else date(2025, 12, 31),
                )
                .returning(Staff.id)
            ).scalar_one()
            for ext, active in (("S1", True), ("S2", True), ("S9", False))
        }
        customer_ids = {
            f"C{n}": conn.execute(
                insert(Customer)
                .values(
                    external_id=f"C{n}",
                    name=f"客户 {n}",
                    card_type=CardType.PERSONAL,
                    branch_id=branch_ids["B1"],
                    account_manager_id=staff_ids["S1"],
                    first_card_on=date(2025, 1, n),
                )
                .returning(Customer.id)
            ).scalar_one()
            for n in range(1, customers + 1)
        }
    return Org(region_ids, branch_ids, staff_ids, customer_ids)


def csv_text(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    newline: str = "\n",
    quote_all: bool = False,
) -> str:
    """``quote_all``: Python's writer quotes a cell holding a bare CR only in this mode."""
    buffer = io.StringIO()
    if quote_all:
        writer = csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_ALL)
    else:
        writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Mapping[str, str] | Sequence[str]],
    *,
    bom: bool = False,
    newline: str = "\n",
    quote_all: bool = False,
) -> Path:
    """Rows are dicts (ordered by ``header``; missing keys empty) or ready lists of cells."""
    cells = [
        [row.get(name, "") for name in header] if isinstance(row, Mapping) else list(row)
        for row in rows
    ]
    data = csv_text(header, cells, newline=newline, quote_all=quote_all).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


CUSTOMER_HEADER = [
    "external_id",
    "name",
    "email",
    "phone",
    "locale",
    "timezone",
    "card_type",
    "branch_code",
    "account_manager_id",
    "marketing_opt_out",
    "survey_opt_out",
    "first_card_on",
]
TRANSACTION_HEADER = [
    "external_id",
    "customer_id",
    "branch_code",
    "kind",
    "amount_cny",
    "volume_litres",
    "occurred_on",
]
COMPLAINT_HEADER = [
    "external_id",
    "customer_id",
    "branch_code",
    "category",
    "product",
    "severity",
    "status",
    "assignee_id",
    "received_at",
    "description",
    "customer_title",
    "acknowledged_at",
    "waiting_since",
    "resolved_at",
    "verified_at",
    "closed_at",
]
TARGET_HEADER = ["period", "scope", "scope_code", "metric", "value"]


def customer_row(external_id: str = "N1", **overrides: str) -> dict[str, str]:
    row = {
        "external_id": external_id,
        "name": f"新客户 {external_id}",
        "email": f"{external_id.lower()}@Example.COM",
        "phone": "+86 138 1234 5678",
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
        "card_type": "fleet",
        "branch_code": "B1",
        "account_manager_id": "S1",
        "marketing_opt_out": "no",
        "survey_opt_out": "false",
        "first_card_on": "2026-02-03",
    }
    return {**row, **overrides}


def transaction_row(external_id: str = "T1", **overrides: str) -> dict[str, str]:
    row = {
        "external_id": external_id,
        "customer_id": "C1",
        "branch_code": "B1",
        "kind": "purchase",
        "amount_cny": "350.50",
        "volume_litres": "45.125",
        "occurred_on": "2026-03-05",
    }
    return {**row, **overrides}


def complaint_row(external_id: str = "K1", **overrides: str) -> dict[str, str]:
    row = {
        "external_id": external_id,
        "customer_id": "C1",
        "branch_code": "B1",
        "category": "service",
        "product": "diesel",
        "severity": "high",
        "status": "new",
        "assignee_id": "S1",
        "received_at": "2026-03-01T09:30:00+08:00",
        "description": "加油等待时间过长",
        "customer_title": "",
        "acknowledged_at": "",
        "waiting_since": "",
        "resolved_at": "",
        "verified_at": "",
        "closed_at": "",
    }
    return {**row, **overrides}


def target_row(**overrides: str) -> dict[str, str]:
    row = {
        "period": "2026-03",
        "scope": "branch",
        "scope_code": "B1",
        "metric": "revenue_fen",
        "value": "125000.50",
    }
    return {**row, **overrides}


CONTACT_HEADER = [
    "external_id",
    "customer_id",
    "staff_id",
    "channel",
    "outcome",
    "occurred_at",
    "notes",
    "revisit_id",
]


def contact_row(external_id: str = "H1", **overrides: str) -> dict[str, str]:
    row = {
        "external_id": external_id,
        "customer_id": "C1",
        "staff_id": "S1",
        "channel": "visit",
        "outcome": "completed",
        "occurred_at": "2026-03-05T10:00:00+08:00",
        "notes": "客户满意，下次带新卡资料",
        "revisit_id": "",
    }
    return {**row, **overrides}


def make_revisit(
    engine: Engine,
    customer_id: int,
    *,
    due_on: date = date(2026, 3, 4),
    status: RevisitStatus = RevisitStatus.OPEN,
    assignee_id: int | None = None,
    channel: ContactChannel = ContactChannel.VISIT,
) -> int:
    """A revisit of ``customer_id`` (open by default: at most one open per customer)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(Revisit)
                .values(
                    customer_id=customer_id,
                    assignee_id=assignee_id,
                    abc_class=AbcClass.A,
                    channel=channel,
                    due_on=due_on,
                    status=status,
                )
                .returning(Revisit.id)
            ).scalar_one()
        )


@contextmanager
def insert_fails_for(engine: Engine, table: str, external_id: str) -> Iterator[None]:
    """A real database failure mid-import: a trigger that rejects the insert of one row of
    ``table`` (by external id), on SQLite or PostgreSQL; removed afterwards."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER forced_failure BEFORE INSERT ON {table} "
                f"WHEN NEW.external_id = '{external_id}' "
                "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.external_id = '{external_id}' THEN RAISE EXCEPTION 'forced failure'; "
                "END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER forced_failure BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION forced_failure()"
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("DROP TRIGGER forced_failure")
            else:
                conn.exec_driver_sql(f"DROP TRIGGER forced_failure ON {table}")
                conn.exec_driver_sql("DROP FUNCTION forced_failure()")
