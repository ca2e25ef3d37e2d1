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
    Branch,
    CareFeedback,
    ContactHistory,
    Customer,
    OutboxMessage,
    Revisit,
    Staff,
)
from crm_db.session import session_scope
from crm_db.types import raw_utc_datetime
from tasks.common.calendars import load_branch_work_calendar
from tasks.common.directory import load_directory
from tasks.common.write_lock import for_update, lock_rows
from tasks.complaints.feedback import record_not_solved
from tasks.revisits.care import CARE_KIND, CARE_QUEUED
from tasks.revisits.rules.care_feedback import (
    FOLLOW_UP_CHANNEL,
    Answer,
    answer_of,
    call_day,
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
    # Who will call: the revisit's assignee while active, else the customer's branch manager
    # (``follow_up_role`` says which, so the page can say "the branch manager").
    follow_up_by: str | None
    follow_up_role: str | None  # "account_manager" | "branch_manager" | None
    # The day the page promises the call (``call_day``): the revisit's planned day, or - when
    # that is not after the answer (an overdue revisit became the call) - the first working day
    # after the answer, on the branch's calendar, when the next digest lists it.
    call_on: date | None
    # Before an answer: the branch manager's name when they would take the call because the
    # account manager has left or is missing (the form's hint then names them), else None.
    branch_manager_would_call: str | None = None


@dataclass(frozen=True)
class Recorded:
    email: CareEmail  # after recording
    duplicate: bool  # nothing was written: this email had been answered already


def load_care_email(
    engine: Engine, outbox_id: int, *, timezone: ZoneInfo | None = None
) -> CareEmail | None:
    """The care email ``outbox_id`` names, or ``None`` if there is none (or it is another kind
    of email, or has no customer). ``timezone`` is the CRM's (the day of the answer; default
    UTC)."""
    with session_scope(engine) as session:
        return _load(session, outbox_id, timezone or ZoneInfo("UTC"))


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
        email = _load(session, outbox_id, timezone)
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
        _ANSWER_EFFECTS[answer](
            session, AnswerFacts(customer, contact, follow_up, now, outbox_id, comment)
        )
        session.flush()
        after = _load(session, outbox_id, timezone)
        assert after is not None  # the same transaction just wrote it
        return Recorded(after, duplicate=False)


@dataclass(frozen=True)
class AnswerFacts:
    """What an answer wrote, for the effects that follow it in the same transaction."""

    customer: Customer
    contact: ContactHistory
    follow_up: Revisit | None  # the call, when one was opened
    now: datetime
    outbox_id: int  # the care email answered
    comment: str | None


def _on_solved(session: Session, facts: AnswerFacts) -> None:
    """Solved: the contact is all (the cadence restarts from it)."""


def _on_not_solved(session: Session, facts: AnswerFacts) -> None:
    """Not solved: the contact says so and the call is open; the complaint the email asked
    about gets the answer recorded, is reopened, or - none on record - a new one is opened
    (``tasks.complaints.feedback``)."""
    record_not_solved(
        session,
        customer=facts.customer,
        outbox_id=facts.outbox_id,
        revisit_id=facts.follow_up.id if facts.follow_up is not None else None,
        comment=facts.comment,
        now=facts.now,
    )


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


def _load(session: Session, outbox_id: int, timezone: ZoneInfo) -> CareEmail | None:
    row = session.execute(
        select(
            OutboxMessage.id,
            func.coalesce(OutboxMessage.sent_at, OutboxMessage.created_at),
            OutboxMessage.locale,
            Customer.id,
            Customer.timezone,
            OutboxMessage.context,
            Customer.branch_id,
            Customer.account_manager_id,
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
            Revisit.assignee_id,
        )
        .select_from(CareFeedback)
        .join(ContactHistory, ContactHistory.id == CareFeedback.contact_id)
        .outerjoin(Revisit, Revisit.id == CareFeedback.follow_up_revisit_id)
        .where(CareFeedback.outbox_id == outbox_id)
    ).one_or_none()
    sent_at = raw_utc_datetime(row[1])  # COALESCE: SQLite returns its text as stored
    assert sent_at is not None  # created_at is NOT NULL
    caller: tuple[str | None, str | None] = (None, None)
    call_on = None
    if feedback is not None and feedback[3] is not None:
        caller = _caller(session, feedback[5], row[6])
        answered_on = feedback[1].astimezone(timezone).date()
        call_on = call_day(feedback[4], answered_on, load_branch_work_calendar(session, row[6]))
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
        follow_up_by=caller[0],
        follow_up_role=caller[1],
        call_on=call_on,
        branch_manager_would_call=(
            _branch_manager_would_call(session, row[7], row[6]) if feedback is None else None
        ),
    )


def _branch_manager_would_call(
    session: Session, account_manager_id: int | None, branch_id: int | None
) -> str | None:
    """The branch manager's name when the assignment rule (``assign``) would give them the call
    (the account manager left or is missing); two small reads, for the unanswered page only."""
    if branch_id is None or bool(
        account_manager_id is not None
        and session.scalar(select(Staff.active).where(Staff.id == account_manager_id))
    ):
        return None
    return session.scalar(
        select(Staff.name)
        .join(Branch, Branch.manager_id == Staff.id)
        .where(Branch.id == branch_id, Staff.active.is_(True))
    )


def _caller(
    session: Session, assignee_id: int | None, branch_id: int | None
) -> tuple[str | None, str | None]:
    """Whom the page names as the caller, and as what: the call's assignee while active (the
    account manager, or the branch manager when the account manager had left); else - the
    assignee left after the answer, before the call moved - the customer's branch manager,
    who takes a departed manager's open work."""
    branch_manager_id = (
        None
        if branch_id is None
        else session.scalar(select(Branch.manager_id).where(Branch.id == branch_id))
    )
    for staff_id in (assignee_id, branch_manager_id):
        if staff_id is None:
            continue
        name = session.scalar(
            select(Staff.name).where(Staff.id == staff_id, Staff.active.is_(True))
        )
        if name is not None:
            role = "branch_manager" if staff_id == branch_manager_id else "account_manager"
            return name, role
    return None, None


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
    due_on = follow_up_due(
        answered_on, load_branch_work_calendar(session, customer.branch_id), taken
    )
    if open_revisit is not None and open_revisit.outcome == CARE_QUEUED:
        # The revisit this care email was for: the customer answering it shows it arrived, so
        # it is done (as the relay's 250 would have made it) and the call is a new revisit.
        open_revisit.status = RevisitStatus.DONE
        open_revisit.outcome = "email_sent"
        open_revisit.completed_at = now
        session.flush()  # before the new open revisit (one open revisit per customer)
        open_revisit = None
    if open_revisit is not None:
        if open_revisit.assignee_id != assignment.assignee_id and not _is_active(
            session, open_revisit.assignee_id
        ):
            # Planned for someone who has left since: the call goes to whoever owns the customer
            # now (the branch manager, flagged), as the page says.
            open_revisit.assignee_id = assignment.assignee_id
            open_revisit.needs_reassignment = assignment.needs_reassignment
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


def _is_active(session: Session, staff_id: int | None) -> bool:
    return staff_id is not None and bool(
        session.scalar(select(Staff.active).where(Staff.id == staff_id))
    )


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
