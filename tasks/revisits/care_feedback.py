"""IO for care feedback: read the care email a feedback link names, and record the customer's
answer - the contact in the customer file and, when the issue is not solved or the customer asks
for a call, a revisit that asks the account manager to call - in one transaction, once per email.

What each answer does beyond that lives in one function per answer (``_ANSWER_EFFECTS``), so a
further effect (e.g. reopening a complaint on "not solved") is one call in one place.

The rules (what is recorded, when the follow-up is due) are in
``tasks/revisits/rules/care_feedback.py``; the page is ``crm_web/care_feedback.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_db.enums import AbcClass, ContactChannel, RevisitStatus
from crm_db.models import (
    CareFeedback,
    ContactHistory,
    Customer,
    OutboxMessage,
    Revisit,
    Staff,
)
from crm_db.session import session_scope
from crm_db.types import raw_utc_datetime
from tasks.common.calendars import load_work_calendar
from tasks.common.directory import load_directory
from tasks.common.write_lock import for_update, lock_rows
from tasks.revisits.care import CARE_KIND
from tasks.revisits.rules.care_feedback import (
    FOLLOW_UP_CHANNEL,
    Answer,
    answer_of,
    feedback_record,
    follow_up_due,
    questions_for,
)
from tasks.revisits.rules.planning import combined_notes
from tasks.rules.organisation import Assignment

# The web app's logger, not a Prefect run logger: answers arrive through ``crm web``.
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CareEmail:
    """What the feedback page needs about the email it answers: who it went to and when, and
    the answer if one was given. Nothing here goes to a log."""

    outbox_id: int
    customer_id: int
    locale: str  # the email's, so the page speaks the language the customer read
    timezone: str
    sent_at: datetime  # when it was sent (queued, if it has not been)
    # True when the email asked about a recorded issue (solved / not solved); else it thanked
    # the customer and offered "please call me". The page offers the same answers.
    asked_about_issue: bool
    answer: Answer | None
    answered_at: datetime | None
    # When not solved: the revisit that is the call, its due date and whom it is assigned to.
    # No revisit when nobody can be assigned (no branch, no active manager).
    follow_up_revisit_id: int | None
    follow_up_on: date | None
    follow_up_by: str | None


@dataclass(frozen=True)
class Recorded:
    email: CareEmail  # after recording
    duplicate: bool  # nothing was written: this email had been answered already


def load_care_email(engine: Engine, outbox_id: int) -> CareEmail | None:
    """The care email ``outbox_id`` names, or ``None`` if there is none (or it is another kind
    of email, or has no customer)."""
    with session_scope(engine) as session:
        return _load(session, outbox_id)


def record_answer(
    engine: Engine,
    outbox_id: int,
    answer: Answer,
    comment: str | None,
    *,
    now: datetime,
    timezone: ZoneInfo,
) -> Recorded | None:
    """Record the customer's answer to care email ``outbox_id`` (``None``: no such care email).

    A second answer to the same email records nothing and returns the first (``duplicate``).
    ``timezone`` is the CRM's: the follow-up falls due on its business calendar."""
    for attempt in range(2):
        try:
            return _record(engine, outbox_id, answer, comment, now, timezone)
        except IntegrityError:
            # A concurrent writer got in between the checks and the insert: the same email
            # answered twice at once (unique outbox_id), or planning opening a revisit for the
            # customer (one open revisit each). Run again: the checks now see what it wrote.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _record(
    engine: Engine,
    outbox_id: int,
    answer: Answer,
    comment: str | None,
    now: datetime,
    timezone: ZoneInfo,
) -> Recorded | None:
    with session_scope(engine) as session:
        _lock(session, outbox_id)
        email = _load(session, outbox_id)
        if email is None:
            return None
        if email.answer is not None:
            return Recorded(email, duplicate=True)
        if answer not in questions_for(email.asked_about_issue):
            raise ValueError(f"outbox row {outbox_id}: answer {answer.value!r} was not offered")
        customer = session.get(Customer, email.customer_id)
        assert customer is not None  # _load joined it
        record = feedback_record(answer, comment)
        assignment = _assignment(session, customer)
        contact = ContactHistory(
            customer_id=customer.id,
            staff_id=assignment.assignee_id,
            channel=ContactChannel.EMAIL,
            outcome=record.outcome,
            occurred_at=now,
            notes=record.notes,
        )
        session.add(contact)
        follow_up = None
        if record.follow_up:
            if assignment.skip is None:
                follow_up = _follow_up(session, customer, assignment, record.notes, now, timezone)
            else:
                # Nobody to call: the answer is in the customer file, and the revisits flow
                # reports this customer's missing branch or manager. Ids only: no personal data.
                logger.warning(
                    "care feedback on outbox row %d: not solved, but no one to assign (%s)",
                    outbox_id,
                    assignment.skip.value,
                )
        session.flush()
        session.add(
            CareFeedback(
                outbox_id=outbox_id,
                contact_id=contact.id,
                follow_up_revisit_id=None if follow_up is None else follow_up.id,
            )
        )
        session.flush()
        _ANSWER_EFFECTS[answer](session, AnswerFacts(customer, contact, follow_up, now))
        session.flush()
        after = _load(session, outbox_id)
        assert after is not None  # the same transaction just wrote it
        return Recorded(after, duplicate=False)


@dataclass(frozen=True)
class AnswerFacts:
    """What an answer wrote, for the effects that follow it in the same transaction."""

    customer: Customer
    contact: ContactHistory
    follow_up: Revisit | None  # the call, when one was opened
    now: datetime


def _on_solved(session: Session, facts: AnswerFacts) -> None:
    """Solved: the contact is all (the cadence restarts from it)."""


def _on_not_solved(session: Session, facts: AnswerFacts) -> None:
    """Not solved: the contact says so and the call is open. Reopening the customer's complaint
    belongs to the complaints flow; its call slots in here."""


def _on_call_me(session: Session, facts: AnswerFacts) -> None:
    """Please call me: the call is open; nothing else to record."""


_ANSWER_EFFECTS: dict[Answer, Callable[[Session, AnswerFacts], None]] = {
    Answer.SOLVED: _on_solved,
    Answer.NOT_SOLVED: _on_not_solved,
    Answer.CALL_ME: _on_call_me,
}


def _lock(session: Session, outbox_id: int) -> None:
    """Serialise answers to one email: a concurrent answer waits and then sees this one."""
    lock_rows(session, select(OutboxMessage.id).where(OutboxMessage.id == outbox_id))


def _load(session: Session, outbox_id: int) -> CareEmail | None:
    row = session.execute(
        select(
            OutboxMessage.id,
            func.coalesce(OutboxMessage.sent_at, OutboxMessage.created_at),
            OutboxMessage.locale,
            Customer.id,
            Customer.timezone,
            OutboxMessage.context,
        )
        .join(Customer, Customer.id == OutboxMessage.customer_id)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.kind == CARE_KIND)
    ).one_or_none()
    if row is None:
        return None
    feedback = session.execute(
        select(
            ContactHistory.outcome,
            ContactHistory.occurred_at,
            ContactHistory.notes,
            Revisit.id,
            Revisit.due_on,
            Staff.name,
        )
        .select_from(CareFeedback)
        .join(ContactHistory, ContactHistory.id == CareFeedback.contact_id)
        .outerjoin(Revisit, Revisit.id == CareFeedback.follow_up_revisit_id)
        .outerjoin(Staff, Staff.id == Revisit.assignee_id)
        .where(CareFeedback.outbox_id == outbox_id)
    ).one_or_none()
    sent_at = raw_utc_datetime(row[1])  # COALESCE: SQLite returns its text as stored
    assert sent_at is not None  # created_at is NOT NULL
    return CareEmail(
        outbox_id=row[0],
        sent_at=sent_at,
        locale=row[2],
        customer_id=row[3],
        timezone=row[4],
        asked_about_issue=bool((row[5] or {}).get("last_issue")),
        answer=None if feedback is None else answer_of(feedback[0], feedback[2]),
        answered_at=None if feedback is None else feedback[1],
        follow_up_revisit_id=None if feedback is None else feedback[3],
        follow_up_on=None if feedback is None else feedback[4],
        follow_up_by=None if feedback is None else feedback[5],
    )


def _assignment(session: Session, customer: Customer) -> Assignment:
    """Who gets the call: the customer's owner as planning decides it (the directory's rule).
    Two reads of small tables, once per answer."""
    directory = load_directory(session.connection())
    return directory.owner(customer.account_manager_id, customer.branch_id)


def _follow_up(
    session: Session,
    customer: Customer,
    assignment: Assignment,
    notes: str,
    now: datetime,
    timezone: ZoneInfo,
) -> Revisit:
    """The revisit that is the call: a new open one due the next free working day, or - the
    database allows one open revisit per customer - the customer's open one, made a call (an
    email-channel revisit would otherwise be closed by the next care email) and due no later."""
    # Locked: a manager recording its outcome (or a care email closing it) waits for this.
    open_revisit = session.scalars(
        for_update(
            select(Revisit).where(
                Revisit.customer_id == customer.id, Revisit.status == RevisitStatus.OPEN
            )
        )
    ).one_or_none()
    answered_on = now.astimezone(timezone).date()
    taken = set(
        session.scalars(
            select(Revisit.due_on).where(
                Revisit.customer_id == customer.id, Revisit.due_on > answered_on
            )
        )
    )
    due_on = follow_up_due(answered_on, load_work_calendar(session), taken)
    if open_revisit is not None:
        open_revisit.channel = FOLLOW_UP_CHANNEL
        open_revisit.notes = combined_notes(open_revisit.notes, notes)
        # Brought forward when it lies further ahead; an overdue one stays (and escalates).
        open_revisit.due_on = min(open_revisit.due_on, due_on)
        # The customer asked: not left on a later day the capacity planner chose.
        if open_revisit.planned_for is not None:
            open_revisit.planned_for = min(open_revisit.planned_for, due_on)
        return open_revisit
    revisit = Revisit(
        customer_id=customer.id,
        assignee_id=assignment.assignee_id,
        abc_class=customer.abc_class or _last_class(session, customer.id),
        channel=FOLLOW_UP_CHANNEL,
        due_on=due_on,
        # Planned on its day, whatever the capacity: the customer asked for the call.
        planned_for=due_on,
        status=RevisitStatus.OPEN,
        # An inactive account manager's customer goes to the branch manager, flagged in the
        # digest (as planning does); the notes carry the customer's words to whoever calls.
        needs_reassignment=assignment.needs_reassignment,
        notes=notes,
        created_at=now,
    )
    session.add(revisit)
    return revisit


def _last_class(session: Session, customer_id: int) -> AbcClass:
    """A customer whose class was cleared since the care email: the class of their last revisit
    (the one the care email was sent for)."""
    abc = session.scalar(
        select(Revisit.abc_class)
        .where(Revisit.customer_id == customer_id)
        .order_by(Revisit.id.desc())
        .limit(1)
    )
    if abc is None:
        raise ValueError(f"customer {customer_id}: no class and no revisit to take one from")
    return abc


__all__ = ["CareEmail", "Recorded", "load_care_email", "record_answer"]
