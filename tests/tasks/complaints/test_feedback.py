"""A care email's "not solved" becomes complaint work in the answer's transaction: it reopens
the complaint the email asked about, records the answer on an open one instead of a
duplicate, or (none on record) opens a new one with a receipt - each linked to the email and
the call it raised. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from crm_db.enums import (
    ComplaintEventKind,
    ComplaintSource,
    ComplaintStatus,
    EventSource,
    Severity,
)
from crm_db.models import CareFeedback, Complaint, ComplaintEvent, OutboxMessage
from crm_db.session import session_scope
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.rules.lifecycle import Transition
from tasks.revisits.care_feedback import record_answer
from tasks.revisits.rules.care_feedback import Answer
from tests.factories import CARE_EMAIL_SENT, CareEmailRow, make_care_email

NOW = datetime(2026, 11, 19, 2, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")
S = ComplaintStatus


def _complaint(
    engine: Engine, row: CareEmailRow, ref: str, received: datetime, *steps: Transition
) -> int:
    with session_scope(engine) as session:
        complaint = open_complaint(
            session,
            Intake(ref, row.customer_id, None, "充值到账", Severity.NORMAL, received,
                   customer_title="加油卡充值"),
        )  # fmt: skip
        cid = complaint.id
    for n, step in enumerate(steps, start=1):
        with session_scope(engine) as session:
            apply_event(session, cid, step, received + timedelta(hours=n), None, EventSource.CLI)
    return cid


def _answer(engine: Engine, row: CareEmailRow, answer: Answer = Answer.NOT_SOLVED) -> None:
    recorded = record_answer(engine, row.outbox_id, answer, "余额还是不对", now=NOW, timezone=TZ)
    assert recorded is not None and not recorded.duplicate


def _follow_up(engine: Engine, row: CareEmailRow) -> int:
    with session_scope(engine) as session:
        feedback = session.scalars(
            select(CareFeedback).where(CareFeedback.outbox_id == row.outbox_id)
        ).one()
        assert feedback.follow_up_revisit_id is not None
        return feedback.follow_up_revisit_id


def test_not_solved_reopens_the_closed_complaint_the_email_asked_about(engine: Engine) -> None:
    row = make_care_email(engine)
    earlier = CARE_EMAIL_SENT - timedelta(days=20)
    cid = _complaint(
        engine, row, "CP1", earlier,
        Transition.ACK, Transition.RESOLVE, Transition.VERIFY, Transition.CLOSE,
    )  # fmt: skip
    _answer(engine, row)
    revisit = _follow_up(engine, row)
    with session_scope(engine) as session:
        complaint = session.get(Complaint, cid)
        assert complaint is not None
        assert complaint.status is S.IN_PROGRESS and complaint.reopened_count == 1
        assert complaint.closed_at is None
        last = session.scalars(
            select(ComplaintEvent)
            .where(ComplaintEvent.complaint_id == cid)
            .order_by(ComplaintEvent.at.desc())
            .limit(1)
        ).one()
        assert (last.at, last.from_status, last.to_status) == (NOW, S.CLOSED, S.IN_PROGRESS)
        assert last.source is EventSource.WEB
        assert last.detail_key == f"care_email:{row.outbox_id}"
        assert f"call: revisit {revisit}" in (last.note or "") and "余额还是不对" in (
            last.note or ""
        )
        assert session.scalar(select(Complaint.id).where(Complaint.id != cid)) is None
    # The same email answered again: recorded once, nothing reopened twice.
    again = record_answer(engine, row.outbox_id, Answer.NOT_SOLVED, None, now=NOW, timezone=TZ)
    assert again is not None and again.duplicate
    with session_scope(engine) as session:
        complaint = session.get(Complaint, cid)
        assert complaint is not None and complaint.reopened_count == 1


def test_an_open_complaint_on_that_issue_gets_the_answer_recorded_not_a_duplicate(
    engine: Engine,
) -> None:
    row = make_care_email(engine)
    cid = _complaint(engine, row, "CP1", CARE_EMAIL_SENT - timedelta(days=2), Transition.ACK)
    _answer(engine, row)
    with session_scope(engine) as session:
        complaints = session.scalars(select(Complaint)).all()
        assert [c.id for c in complaints] == [cid]
        assert complaints[0].status is S.ACKNOWLEDGED
        note = session.scalars(
            select(ComplaintEvent).where(ComplaintEvent.kind == ComplaintEventKind.NOTE)
        ).one()
        assert note.complaint_id == cid and note.at == NOW
        assert note.detail_key == f"care_email:{row.outbox_id}"


def test_a_later_open_complaint_of_the_category_is_used_instead_of_reopening(
    engine: Engine,
) -> None:
    row = make_care_email(engine)
    old = _complaint(
        engine, row, "CP1", CARE_EMAIL_SENT - timedelta(days=30), Transition.ACK,
        Transition.RESOLVE,
    )  # fmt: skip
    # Opened after the email went out (the customer phoned in as well).
    newer = _complaint(engine, row, "CP2", CARE_EMAIL_SENT + timedelta(hours=2))
    _answer(engine, row)
    with session_scope(engine) as session:
        assert session.get(Complaint, old).status is S.RESOLVED  # type: ignore[union-attr]
        note = session.scalars(
            select(ComplaintEvent).where(ComplaintEvent.kind == ComplaintEventKind.NOTE)
        ).one()
        assert note.complaint_id == newer


def test_without_a_complaint_on_record_one_is_opened_with_a_receipt(engine: Engine) -> None:
    row = make_care_email(engine)  # its issue "加油卡充值" has no complaint row
    _answer(engine, row)
    with session_scope(engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.source is ComplaintSource.CARE_FEEDBACK
        assert complaint.source_ref == f"care_email:{row.outbox_id}"
        assert complaint.customer_title == "加油卡充值" and complaint.category == "加油卡充值"
        assert complaint.description == "余额还是不对"
        assert complaint.received_at == NOW and complaint.status is S.NEW
        assert complaint.external_id == "CP20260000001"
        receipt = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "complaint_receipt")
        ).one()
        assert receipt.customer_id == row.customer_id
        assert receipt.context["reference"] == "CP20260000001"


def test_solved_and_call_me_leave_complaints_alone(engine: Engine) -> None:
    row = make_care_email(engine)
    cid = _complaint(engine, row, "CP1", CARE_EMAIL_SENT - timedelta(days=9), Transition.ACK,
                     Transition.RESOLVE)  # fmt: skip
    _answer(engine, row, Answer.SOLVED)
    with session_scope(engine) as session:
        complaint = session.get(Complaint, cid)
        assert complaint is not None and complaint.status is S.RESOLVED
        assert complaint.reopened_count == 0
        assert (
            session.scalars(select(ComplaintEvent.kind)).all().count(ComplaintEventKind.NOTE) == 0
        )
