"""``crm import complaints``: complaint intake from another system (四个不漏: all recorded)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_db.csv_import import fields
from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import ComplaintStatus, Severity

DESCRIPTION_MAX_LENGTH = 10_000

COLUMNS = (
    Column("external_id", True, "the complaint's id in the source system (upsert key)"),
    Column("customer_id", True, "external id of an existing customer"),
    Column("branch_code", True, "an existing branch code (the branch that handles it)"),
    Column("category", True, "≤ 80 characters, single line"),
    Column("product", False, "≤ 80 characters, single line"),
    Column("severity", True, "low, normal, high or critical"),
    Column(
        "status",
        True,
        "new, acknowledged, in_progress, waiting_on_customer, resolved, verified or closed",
    ),
    Column("assignee_id", False, "external id of an active staff member"),
    Column(
        "received_at",
        True,
        "ISO-8601, e.g. 2026-03-01T09:30:00+08:00; without an offset it is read in CRM_TIMEZONE",
    ),
    Column(
        "description",
        False,
        f"free text, line breaks allowed, ≤ {DESCRIPTION_MAX_LENGTH:,} characters",
    ),
)


@dataclass(frozen=True, slots=True)
class ComplaintRecord:
    external_id: str
    customer_id: int
    branch_id: int
    category: str
    product: str | None
    severity: Severity
    status: ComplaintStatus
    assignee_id: int | None
    received_at: datetime
    description: str

    def values(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "customer_id": self.customer_id,
            "branch_id": self.branch_id,
            "category": self.category,
            "product": self.product,
            "severity": self.severity,
            "status": self.status,
            "assignee_id": self.assignee_id,
            "received_at": self.received_at,
            "description": self.description,
        }


def validate_complaint(
    row: Mapping[str, str], line: int, lookups: Lookups
) -> ComplaintRecord | list[FieldError]:
    check = RowChecker(row, line)
    record = ComplaintRecord(
        external_id=check.take("external_id", fields.identifier),
        customer_id=check.take(
            "customer_id",
            lambda v: fields.resolve(v, lookups.customers, "unknown customer external id"),
        ),
        branch_id=check.take(
            "branch_code", lambda v: fields.resolve(v, lookups.branches, "unknown branch code")
        ),
        category=check.take("category", lambda v: fields.text(v, max_length=80)),
        product=check.take("product", lambda v: fields.optional_text(v, max_length=80)),
        severity=check.take("severity", lambda v: fields.choice(v, Severity)),
        status=check.take("status", lambda v: fields.choice(v, ComplaintStatus)),
        assignee_id=check.take(
            "assignee_id", lambda v: fields.active_staff(v, lookups.staff, "assignee")
        ),
        received_at=check.take(
            "received_at", lambda v: fields.iso_datetime(v, lookups.default_timezone)
        ),
        description=check.take(
            "description", lambda v: fields.multiline_text(v, max_length=DESCRIPTION_MAX_LENGTH)
        ),
    )
    return check.errors or record


SPEC: KindSpec[ComplaintRecord] = KindSpec(
    name="complaints",
    columns=COLUMNS,
    key_columns=("external_id",),
    needs=frozenset({LookupName.BRANCHES, LookupName.STAFF, LookupName.CUSTOMERS}),
    validate=validate_complaint,
)
