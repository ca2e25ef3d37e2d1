"""Recording a customer's answer to a care email, against real SQLite files and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import (
    BusinessCalendar,
    CalendarDay,
    CareFeedback,
    ContactHistory,
    OutboxMessage,
    Revisit,
)
from crm_db.session import session_scope
from tasks.care_feedback import Recorded, load_care_email, record_answer
from tasks.mail.outbox import NewMessage, enqueue
from tasks.rules.care_feedback import Answer
from tests.factories import make_customer, make_org

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Thursday 2026-11-19, 10:00 in Shanghai.
SENT = datetime(2026, 11, 17, 1, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 19, 2, 0, tzinfo=UTC)
FRIDAY = date(2026, 11, 20)


@dataclass(frozen=True)
class CareEmailRow:
    outbox_id: int
    customer_id: int
    account_manager_id: int
    branch_manager_id: int


def make_care_email(
    engine: Engine, *, manager_active: bool = True, kind: str = "revisit_care"
) -> CareEmailRow:
    """A C-class customer of a fresh org, and a care email queued for them at ``SENT``."""
    with session_scope(engine) as session:
        org = make_org(session)
        org.account_manager.active = manager_active
        customer = make_customer(session, org, abc_class=AbcClass.C)
        result = enqueue(
            session,
            [
                NewMessage(
                    idempotency_key=f"{kind}:2026-11-17:customer:{customer.id}",
                    kind=kind,
                    locale="zh-CN",
                    recipient_email=customer.email or "",
                    recipient_name=customer.name,
                    customer_id=customer.id,
                    staff_id=None,
                    context={"customer_name": customer.name},
                )
            ],
            now=SENT,
        )
        assert result.inserted == 1
        session.flush()
        outbox_id = session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.customer_id == customer.id)
        )
        assert outbox_id is not None
        return CareEmailRow(outbox_id, customer.id, org.account_manager.id, org.branch_manager.id)


def counts(engine: Engine) -> tuple[int, int, int]:
    """Rows in contact_history, revisits and care_feedback."""
    with session_scope(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (ContactHistory, Revisit, CareFeedback)
        )


def contact_of(
    engine: Engine, customer_id: int
) -> tuple[ContactChannel, ContactOutcome, int | None, str | None]:
    with session_scope(engine) as session:
        row = session.execute(
            select(
                ContactHistory.channel,
                ContactHistory.outcome,
                ContactHistory.staff_id,
                ContactHistory.notes,
            ).where(ContactHistory.customer_id == customer_id)
        ).one()
        return row.channel, row.outcome, row.staff_id, row.notes


def open_revisits(engine: Engine, customer_id: int) -> list[Revisit]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(Revisit).where(
                Revisit.customer_id == customer_id, Revisit.status == RevisitStatus.OPEN
            )
        ).all()
        session.expunge_all()
        return list(rows)


def answer(
    engine: Engine, outbox_id: int, given: Answer, comment: str | None = None
) -> Recorded | None:
    return record_answer(engine, outbox_id, given, comment, now=NOW, timezone=SHANGHAI)


def test_solved_records_a_completed_contact_and_nothing_to_do(engine: Engine) -> None:
    row = make_care_email(engine)
    before = counts(engine)

    recorded = answer(engine, row.outbox_id, Answer.SOLVED)

    assert recorded is not None and not recorded.duplicate
    assert recorded.email.answer is Answer.SOLVED
    assert recorded.email.answered_at == NOW
    assert recorded.email.follow_up_on is None
    assert counts(engine) == (before[0] + 1, before[1], before[2] + 1)
    assert contact_of(engine, row.customer_id) == (
        ContactChannel.EMAIL,
        ContactOutcome.COMPLETED,
        row.account_manager_id,
        "customer feedback: issue solved",
    )
    assert open_revisits(engine, row.customer_id) == []


def test_not_solved_opens_a_phone_revisit_for_the_account_manager_next_working_day(
    engine: Engine,
) -> None:
    row = make_care_email(engine)

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED, "卡里余额还是不对")

    assert recorded is not None
    assert recorded.email.answer is Answer.NOT_SOLVED
    assert recorded.email.follow_up_on == FRIDAY
    channel, outcome, staff_id, notes = contact_of(engine, row.customer_id)
    assert (channel, outcome, staff_id) == (
        ContactChannel.EMAIL,
        ContactOutcome.ISSUE_RAISED,
        row.account_manager_id,
    )
    assert notes == "customer feedback: not solved\n卡里余额还是不对"
    [follow_up] = open_revisits(engine, row.customer_id)
    assert follow_up.assignee_id == row.account_manager_id
    assert follow_up.channel is ContactChannel.PHONE
    assert follow_up.abc_class is AbcClass.C
    assert follow_up.due_on == FRIDAY
    assert follow_up.needs_reassignment is False
    assert follow_up.notes == notes
    with session_scope(engine) as session:
        feedback = session.scalars(select(CareFeedback)).one()
        assert feedback.follow_up_revisit_id == follow_up.id
        assert (feedback.solved, feedback.comment) == (False, "卡里余额还是不对")


def test_a_second_answer_records_nothing_and_the_first_stands(engine: Engine) -> None:
    row = make_care_email(engine)
    assert answer(engine, row.outbox_id, Answer.NOT_SOLVED) is not None
    after_first = counts(engine)

    again = answer(engine, row.outbox_id, Answer.SOLVED, "never mind")

    assert again is not None and again.duplicate
    assert again.email.answer is Answer.NOT_SOLVED
    assert counts(engine) == after_first


def test_an_open_revisit_is_reused_rather_than_a_second_one_opened(engine: Engine) -> None:
    row = make_care_email(engine)
    with session_scope(engine) as session:
        session.add(
            Revisit(
                customer_id=row.customer_id,
                assignee_id=row.account_manager_id,
                abc_class=AbcClass.C,
                channel=ContactChannel.EMAIL,
                due_on=date(2026, 11, 18),
            )
        )

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED)

    assert recorded is not None
    [still_open] = open_revisits(engine, row.customer_id)
    assert still_open.due_on == date(2026, 11, 18)
    assert recorded.email.follow_up_on == date(2026, 11, 18)


def test_a_departed_account_managers_customer_goes_to_the_branch_manager_flagged(
    engine: Engine,
) -> None:
    row = make_care_email(engine, manager_active=False)

    answer(engine, row.outbox_id, Answer.NOT_SOLVED)

    [follow_up] = open_revisits(engine, row.customer_id)
    assert follow_up.assignee_id == row.branch_manager_id
    assert follow_up.needs_reassignment is True


def test_the_follow_up_avoids_holidays_and_days_already_holding_a_revisit(engine: Engine) -> None:
    row = make_care_email(engine)
    with session_scope(engine) as session:
        calendar = BusinessCalendar(code="CN", name="China")
        session.add(calendar)
        session.flush()
        session.add(CalendarDay(calendar_id=calendar.id, day=FRIDAY, is_working=False))
        # Monday already holds the customer's (completed) revisit.
        session.add(
            Revisit(
                customer_id=row.customer_id,
                abc_class=AbcClass.C,
                channel=ContactChannel.EMAIL,
                due_on=date(2026, 11, 23),
                status=RevisitStatus.DONE,
            )
        )

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED)

    assert recorded is not None and recorded.email.follow_up_on == date(2026, 11, 24)


def test_links_to_unknown_or_other_emails_record_nothing(engine: Engine) -> None:
    digest = make_care_email(engine, kind="revisit_digest")
    before = counts(engine)

    assert answer(engine, digest.outbox_id, Answer.SOLVED) is None
    assert answer(engine, 987_654, Answer.SOLVED) is None
    assert load_care_email(engine, digest.outbox_id) is None
    assert counts(engine) == before


def test_concurrent_answers_to_one_email_record_exactly_one(engine: Engine) -> None:
    row = make_care_email(engine)
    before = counts(engine)
    start = threading.Barrier(4)
    results: list[Recorded | None] = []

    def submit(given: Answer) -> None:
        start.wait()
        results.append(answer(engine, row.outbox_id, given))

    threads = [
        threading.Thread(target=submit, args=(given,))
        for given in (Answer.SOLVED, Answer.NOT_SOLVED) * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    recorded = [r for r in results if r is not None]
    assert len(recorded) == 4
    assert sum(1 for r in recorded if not r.duplicate) == 1
    assert len({r.email.answer for r in recorded}) == 1
    contacts_added, _, feedback_added = (a - b for a, b in zip(counts(engine), before, strict=True))
    assert (contacts_added, feedback_added) == (1, 1)
    assert len(open_revisits(engine, row.customer_id)) <= 1
