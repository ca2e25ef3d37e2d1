"""``crm import responses``, the write half: each validated row is checked against its
invitation - the campaign's score range (``validate_answer`` with the campaign's kind), the
invitation's life and that it was not answered - and recorded through
``tasks.surveys.answers.record_answer``, the page's own path, at the row's ``responded_at``.

All or nothing: any refused row raises ``RowsRejected`` with every row's problem, and the
import's transaction rolls back. A re-import of the same file records nothing (each answer is
there, the same: unchanged); a different answer to an answered invitation is an error. Two rows
of one file for the same invitation are an error too, whichever way each names it (the lines
written so far are remembered per connection, across the chunks of one import).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.kinds.responses import ResponseRecord
from crm_db.models import SurveyCampaign, SurveyInvitation
from tasks.complaints.importing import Counts, RowsRejected
from tasks.surveys.answers import Outcome, load_invitation, record_answer
from tasks.surveys.rules.answers import Answer, validate_answer

# The invitations each import's connection has recorded so far, with their lines: an import
# holds one connection for its one transaction, and the entry goes with the connection.
_LINES: WeakKeyDictionary[Connection, dict[int, int]] = WeakKeyDictionary()


def write_response_records(
    conn: Connection, records: Sequence[ResponseRecord], now: datetime
) -> Counts:
    """Record ``records`` in ``conn``'s transaction (the caller commits or rolls back)."""
    session = Session(bind=conn)
    try:
        inserted = unchanged = 0
        errors: list[FieldError] = []
        seen = _LINES.setdefault(conn, {})
        for record in records:
            outcome = _write(session, record, now, errors, seen)
            inserted += outcome is Outcome.RECORDED
            unchanged += outcome is Outcome.REPEATED
        if errors:
            raise RowsRejected(errors)
        session.flush()
        return Counts(inserted, 0, unchanged)
    finally:
        session.close()


def _invitation_id(
    session: Session, record: ResponseRecord, errors: list[FieldError]
) -> int | None:
    if record.invitation_id is not None:
        found = session.scalar(
            select(SurveyInvitation.id).where(SurveyInvitation.id == record.invitation_id)
        )
        if found is None:
            errors.append(FieldError(record.line, "invitation", "unknown invitation number"))
        return found
    campaign_id = session.scalar(
        select(SurveyCampaign.id).where(SurveyCampaign.code == record.campaign_code)
    )
    if campaign_id is None:
        errors.append(FieldError(record.line, "campaign", "unknown campaign code"))
        return None
    found = session.scalar(
        select(SurveyInvitation.id).where(
            SurveyInvitation.campaign_id == campaign_id,
            SurveyInvitation.customer_id == record.customer_id,
        )
    )
    if found is None:
        errors.append(
            FieldError(record.line, "customer_id", "the customer was not invited in this campaign")
        )
    return found


def _write(
    session: Session,
    record: ResponseRecord,
    now: datetime,
    errors: list[FieldError],
    seen: dict[int, int],
) -> Outcome | None:
    invitation_id = _invitation_id(session, record, errors)
    if invitation_id is None:
        return None
    invitation = load_invitation(session, invitation_id)
    assert invitation is not None  # just found
    answer = validate_answer(
        invitation.kind,
        score=record.score,
        product_rating=record.product_rating,
        service_rating=record.service_rating,
        suggestion=record.suggestion,
    )
    if not isinstance(answer, Answer):
        errors.extend(
            FieldError(record.line, p.field, f"{p.message} ({invitation.kind.value} campaign)")
            for p in answer
        )
        return None
    earlier = seen.get(invitation_id)
    if earlier is not None:
        errors.append(
            FieldError(record.line, "invitation", f"answered on line {earlier} of this file")
        )
        return None
    seen[invitation_id] = record.line
    result = record_answer(
        session,
        invitation_id,
        answer,
        now=now,
        source=record.source,
        responded_at=record.responded_at,
        recorded_by_id=record.recorded_by_id,
        as_complaint=record.as_complaint,
    )
    if result.outcome is Outcome.REFUSED:
        problem = result.problem
        errors.append(
            FieldError(
                record.line,
                problem.field if problem else "invitation",
                problem.message if problem else "cannot be answered",
            )
        )
        return None
    return result.outcome
