"""``crm import contacts``: the contact history (客户档案): visits, calls, emails and surveys with
their outcomes, e.g. the revisits a CRM completed, recorded in bulk.

A row naming ``revisit_id`` with an outcome that reached the customer closes that revisit if it
is still open (the writer applies ``crm_db.enums.REACHED_OUTCOMES``, the rule ``record_outcome``
uses); this module only checks that the revisit exists and belongs to the row's customer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crm_db.csv_import import fields
from crm_db.csv_import.errors import CellError, FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import ContactChannel, ContactOutcome

# The limit ``record_outcome`` applies to notes (tasks.revisits.completion.MAX_NOTES; a test keeps
# the two equal). Not imported: that module brings the ORM session into this pure one.
NOTES_MAX_LENGTH = 2000
# The source system's clock may run a little ahead of ours; beyond that a future contact is a
# typo (a wrong year or month) that would push the next revisit out of schedule.
FUTURE_TOLERANCE = timedelta(minutes=5)
_REVISIT_NUMBER = re.compile(r"\d{1,18}", re.ASCII)  # the ids are BIGINT-sized at most

COLUMNS = (
    Column("external_id", True, "the contact's id in the source system (upsert key, ≤ 64 chars)"),
    Column("customer_id", True, "external id of an existing customer"),
    Column(
        "staff_id",
        False,
        "external id of the staff member who made the contact (may have left since)",
    ),
    Column("channel", True, "visit, phone, email or survey"),
    Column(
        "outcome",
        True,
        "completed, no_answer, rescheduled or issue_raised (completed and issue_raised mean "
        "the customer was reached)",
    ),
    Column(
        "occurred_at",
        True,
        "ISO-8601, e.g. 2026-03-01T09:30:00+08:00; without an offset it is read in CRM_TIMEZONE; "
        "not more than 5 minutes in the future",
    ),
    Column(
        "notes",
        False,
        f"free text, line breaks allowed, ≤ {NOTES_MAX_LENGTH:,} characters",
    ),
    Column(
        "revisit_id",
        False,
        "the revisit's number as shown in the digest; it must be this customer's. A reached "
        "outcome closes it if still open; no_answer and rescheduled leave it open",
    ),
)


@dataclass(frozen=True, slots=True)
class ContactRecord:
    external_id: str
    customer_id: int
    staff_id: int | None
    channel: ContactChannel
    outcome: ContactOutcome
    occurred_at: datetime
    notes: str | None
    revisit_id: int | None

    def values(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "customer_id": self.customer_id,
            "staff_id": self.staff_id,
            "channel": self.channel,
            "outcome": self.outcome,
            "occurred_at": self.occurred_at,
            "notes": self.notes,
            "revisit_id": self.revisit_id,
        }


def _staff(value: str, lookups: Lookups) -> int | None:
    """Any staff member, active or not: the contact happened when they were still here."""
    if not value.strip():
        return None
    return fields.resolve(value, lookups.staff, "unknown staff external id").id


def _occurred_at(value: str, lookups: Lookups, now: datetime) -> datetime:
    moment = fields.iso_datetime(value, lookups.default_timezone)
    if moment > now + FUTURE_TOLERANCE:
        raise CellError("in the future (more than 5 minutes after the import started)")
    return moment


def _notes(value: str) -> str | None:
    return fields.multiline_text(value, max_length=NOTES_MAX_LENGTH) or None


def _revisit(value: str, lookups: Lookups, customer_id: int | None) -> int | None:
    """``customer_id`` is None when the customer cell is bad (already reported): then only the
    revisit's existence can be checked."""
    value = value.strip()
    if not value:
        return None
    if not _REVISIT_NUMBER.fullmatch(value):
        raise CellError("not a revisit id (a whole number, as shown in the digest)")
    revisit_id = int(value)
    owner = lookups.revisits.get(revisit_id)
    if owner is None:
        raise CellError("unknown revisit id (no revisit with this number)")
    if customer_id is not None and owner != customer_id:
        raise CellError("the revisit belongs to another customer")
    return revisit_id


def validate_contact(
    row: Mapping[str, str], line: int, lookups: Lookups
) -> ContactRecord | list[FieldError]:
    now = lookups.now
    if now is None:  # a programming error, not a data error: the pipeline always sets it
        raise ValueError("contacts are validated against the import's clock: set Lookups.now")
    check = RowChecker(row, line)
    external_id = check.take("external_id", fields.identifier)
    customer_id = check.take(
        "customer_id",
        lambda v: fields.resolve(v, lookups.customers, "unknown customer external id"),
    )
    record = ContactRecord(
        external_id=external_id,
        customer_id=customer_id,
        staff_id=check.take("staff_id", lambda v: _staff(v, lookups)),
        channel=check.take("channel", lambda v: fields.choice(v, ContactChannel)),
        outcome=check.take("outcome", lambda v: fields.choice(v, ContactOutcome)),
        occurred_at=check.take("occurred_at", lambda v: _occurred_at(v, lookups, now)),
        notes=check.take("notes", _notes),
        revisit_id=check.take("revisit_id", lambda v: _revisit(v, lookups, customer_id)),
    )
    return check.errors or record


SPEC: KindSpec[ContactRecord] = KindSpec(
    name="contacts",
    columns=COLUMNS,
    key_columns=("external_id",),
    needs=frozenset({LookupName.STAFF, LookupName.CUSTOMERS, LookupName.REVISITS}),
    validate=validate_contact,
)
