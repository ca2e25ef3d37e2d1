"""``crm import complaints``, the write half: each validated row becomes a complaint opened at
``received_at`` with its events at the row's own times (never the import's), through the same
lifecycle functions as every other change, and the intake notices of the complaints this
import created are queued in the import's transaction.

A row for a complaint that exists adds the events its times show beyond the recorded ones
(the recorded history must be where the row's begins: same steps, same times) and updates
category, product, severity, description and title; anything else is a row error, and the
whole file is rolled back. A changed severity keeps the targets copied at intake until
``crm complaint recompute``. A re-import of the same file writes nothing and queues nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.kinds.complaints import ComplaintRecord
from crm_db.enums import ComplaintEventKind, ComplaintSource, ComplaintStatus, EventSource
from crm_db.models import Complaint, ComplaintEvent
from tasks.complaints.intake import queue_intake_notices
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.rules.lifecycle import TRANSITIONS, Transition
from tasks.complaints.rules.sla import PolicyNotFoundError

IMPORT_NOTE = "csv import"
_PLAIN = ("category", "product", "severity", "description", "customer_title")


class RowsRejected(Exception):
    """Rows the database state refuses (found while writing); the import rolls back."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} row(s) refused")
        self.errors = errors


@dataclass(frozen=True)
class Counts:
    inserted: int
    updated: int
    unchanged: int


def _planned(record: ComplaintRecord) -> list[tuple[ComplaintStatus, datetime]]:
    steps = [(ComplaintStatus.NEW, record.received_at)]
    steps += [(TRANSITIONS[t][1], at) for t, at in record.transitions]
    return steps


def _field_at(record: ComplaintRecord, index: int) -> str:
    if index == 0:
        return "received_at"
    transition = record.transitions[index - 1][0]
    return {
        Transition.ACK: "acknowledged_at",
        Transition.START: "acknowledged_at",
        Transition.WAIT: "waiting_since",
        Transition.RESOLVE: "resolved_at",
        Transition.VERIFY: "verified_at",
        Transition.CLOSE: "closed_at",
    }.get(transition, "status")


def write_complaint_records(
    conn: Connection, records: Sequence[ComplaintRecord], now: datetime
) -> Counts:
    """Write ``records`` in ``conn``'s transaction (the caller commits or rolls back)."""
    session = Session(bind=conn)
    try:
        counts, created, errors = _write(session, records)
        if errors:
            raise RowsRejected(errors)
        queue_intake_notices(session, created, now=now)
        session.flush()
        return counts
    finally:
        session.close()


def _write(
    session: Session, records: Sequence[ComplaintRecord]
) -> tuple[Counts, list[Complaint], list[FieldError]]:
    inserted = updated = unchanged = 0
    created: list[Complaint] = []
    errors: list[FieldError] = []
    existing = {
        c.external_id: c
        for c in session.scalars(
            select(Complaint).where(Complaint.external_id.in_([r.external_id for r in records]))
        )
    }
    for record in records:
        complaint = existing.get(record.external_id)
        try:
            if complaint is None:
                created.append(_insert(session, record))
                inserted += 1
            elif _update(session, complaint, record, errors):
                updated += 1
            else:
                unchanged += 1
        except PolicyNotFoundError as exc:
            errors.append(FieldError(record.line, "severity", str(exc)))
        except ValueError as exc:  # an event the recorded history does not allow
            errors.append(FieldError(record.line, "status", str(exc)))
    return Counts(inserted, updated, unchanged), created, errors


def _insert(session: Session, record: ComplaintRecord) -> Complaint:
    complaint = open_complaint(
        session,
        Intake(
            external_id=record.external_id,
            customer_id=record.customer_id,
            branch_id=record.branch_id,
            category=record.category,
            severity=record.severity,
            received_at=record.received_at,
            description=record.description,
            customer_title=record.customer_title,
            product=record.product,
            assignee_id=record.assignee_id,
            source=ComplaintSource.IMPORT,
        ),
        source=EventSource.IMPORT,
        note=IMPORT_NOTE,
    )
    for transition, at in record.transitions:
        complaint = apply_event(
            session, complaint.id, transition, at, None, EventSource.IMPORT, IMPORT_NOTE
        )
    return complaint


def _update(
    session: Session, complaint: Complaint, record: ComplaintRecord, errors: list[FieldError]
) -> bool:
    """Bring ``complaint`` up to ``record``; whether anything changed (row errors appended)."""
    recorded = [
        (to, at)
        for to, at in session.execute(
            select(ComplaintEvent.to_status, ComplaintEvent.at)
            .where(
                ComplaintEvent.complaint_id == complaint.id,
                ComplaintEvent.kind == ComplaintEventKind.TRANSITION,
            )
            .order_by(ComplaintEvent.at, ComplaintEvent.id)
        ).tuples()
    ]
    planned = _planned(record)
    for index, step in enumerate(recorded):
        if index >= len(planned) or planned[index] != step:
            field = "status" if index >= len(planned) else _field_at(record, index)
            errors.append(
                FieldError(
                    record.line,
                    field,
                    f"differs from the recorded history of complaint {complaint.external_id} "
                    f"(step {index + 1}: {step[0].value}); change it with crm complaint",
                )
            )
            return False
    if record.assignee_id is not None and record.assignee_id != complaint.assignee_id:
        errors.append(
            FieldError(
                record.line,
                "assignee_id",
                "differs from the complaint's owner; reassign with crm complaint assign "
                "(the file gives no time for it)",
            )
        )
        return False
    changed = False
    for name in _PLAIN:
        if getattr(complaint, name) != getattr(record, name):
            setattr(complaint, name, getattr(record, name))
            changed = True
    for transition, at in record.transitions[len(recorded) - 1 :]:
        apply_event(session, complaint.id, transition, at, None, EventSource.IMPORT, IMPORT_NOTE)
        changed = True
    return changed


__all__ = ["Counts", "RowsRejected", "write_complaint_records"]
