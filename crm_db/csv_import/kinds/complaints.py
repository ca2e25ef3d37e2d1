"""``crm import complaints``: complaint intake from another system (四个不漏: all recorded).

One row per complaint with its lifecycle times: the events are written at those times (never
at the import's), and the status needs exactly the times that lead to it
(``tasks.complaints.rules.intake.import_transitions``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from crm_db.csv_import import fields
from crm_db.csv_import.errors import CellError, FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import ComplaintStatus, Severity
from tasks.complaints.rules.intake import STAMP_FIELDS, StampError, Stamps, import_transitions
from tasks.complaints.rules.lifecycle import Transition

DESCRIPTION_MAX_LENGTH = 10_000
# The source system's clock may run a little ahead of ours; beyond that a time is refused.
FUTURE_TOLERANCE = timedelta(minutes=5)
_TIME_RULE = "ISO-8601 like received_at, after the time before it, not in the future"

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
        f"internal free text (never shown to customers), line breaks allowed, "
        f"≤ {DESCRIPTION_MAX_LENGTH:,} characters",
    ),
    Column(
        "customer_title",
        False,
        "the issue as the customer reads it (receipt, care emails), ≤ 200 characters",
    ),
    Column(
        "acknowledged_at",
        False,
        f"first response; required from acknowledged on ({_TIME_RULE})",
    ),
    Column("waiting_since", False, "required for waiting_on_customer, else empty"),
    Column("resolved_at", False, "required for resolved, verified and closed"),
    Column("verified_at", False, "required for verified and closed (复查)"),
    Column("closed_at", False, "required for closed"),
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
    customer_title: str | None = None
    # The events after intake, at the row's times; the physical line, for write-time errors.
    transitions: tuple[tuple[Transition, datetime], ...] = ()
    line: int = 0

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
        received_at=check.take("received_at", lambda v: _received(v, lookups)),
        description=check.take(
            "description", lambda v: fields.multiline_text(v, max_length=DESCRIPTION_MAX_LENGTH)
        ),
    )
    title = check.take("customer_title", lambda v: fields.optional_text(v, max_length=200))
    stamps = {name: check.take(name, lambda v: _optional_time(v, lookups)) for name in STAMP_FIELDS}
    if check.errors:
        return check.errors
    try:
        transitions = import_transitions(record.status, record.received_at, Stamps(**stamps))
    except StampError as exc:
        check.fail(exc.field, exc.problem)
        return check.errors
    return replace(record, customer_title=title, transitions=tuple(transitions), line=line)


def _received(value: str, lookups: Lookups) -> datetime:
    moment = fields.iso_datetime(value, lookups.default_timezone)
    if lookups.now is not None and moment > lookups.now + FUTURE_TOLERANCE:
        raise CellError("in the future (more than 5 minutes after the import started)")
    return moment


def _optional_time(value: str, lookups: Lookups) -> datetime | None:
    if not value.strip():
        return None
    moment = fields.iso_datetime(value, lookups.default_timezone)
    if lookups.now is not None and moment > lookups.now + FUTURE_TOLERANCE:
        raise CellError("in the future (more than 5 minutes after the import started)")
    return moment


SPEC: KindSpec[ComplaintRecord] = KindSpec(
    name="complaints",
    columns=COLUMNS,
    key_columns=("external_id",),
    needs=frozenset({LookupName.BRANCHES, LookupName.STAFF, LookupName.CUSTOMERS}),
    validate=validate_complaint,
)
