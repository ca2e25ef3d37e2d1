"""Recording a customer's answer to a care email, against real SQLite files and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import (
    BusinessCalendar,
    CalendarDay,
    CareFeedback,
    ContactHistory,
    Customer,
    Revisit,
    Staff,
)
from crm_db.session import session_scope
from tasks.revisits.care_feedback import Recorded, load_care_email, record_answer
from tasks.revisits.rules.care_feedback import Answer
from tests.factories import CareEmailRow, make_care_email

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Thursday 2026-11-19, 10:00 in Shanghai.
NOW = datetime(2026, 11, 19, 2, 0, tzinfo=UTC)
FRIDAY = date(2026, 11, 20)


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
        contact = session.get(ContactHistory, feedback.contact_id)
        assert contact is not None and contact.occurred_at == NOW
        assert contact.notes == notes


def test_a_second_answer_records_nothing_and_the_first_stands(engine: Engine) -> None:
    row = make_care_email(engine)
    assert answer(engine, row.outbox_id, Answer.NOT_SOLVED) is not None
    after_first = counts(engine)

    again = answer(engine, row.outbox_id, Answer.SOLVED, "never mind")

    assert again is not None and again.duplicate
    assert again.email.answer is Answer.NOT_SOLVED
    assert counts(engine) == after_first


def _open_revisit(engine: Engine, row: CareEmailRow, due_on: date) -> int:
    with session_scope(engine) as session:
        revisit = Revisit(
            customer_id=row.customer_id,
            assignee_id=row.account_manager_id,
            abc_class=AbcClass.C,
            channel=ContactChannel.EMAIL,
            due_on=due_on,
            notes="planned by cadence",
        )
        session.add(revisit)
        session.flush()
        return revisit.id


@pytest.mark.parametrize(
    ("due_on", "call_on"),
    [
        # Overdue since Wednesday: it stays due then (and escalates on its own schedule).
        (date(2026, 11, 18), date(2026, 11, 18)),
        # Due in three weeks: the call is brought forward to the next working day.
        (date(2026, 12, 10), FRIDAY),
    ],
    ids=["overdue", "later"],
)
def test_the_customers_open_revisit_becomes_the_call(
    engine: Engine, due_on: date, call_on: date
) -> None:
    row = make_care_email(engine)
    revisit_id = _open_revisit(engine, row, due_on)

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED, "还是不对")

    assert recorded is not None
    assert recorded.email.follow_up_revisit_id == revisit_id
    [call] = open_revisits(engine, row.customer_id)
    assert call.id == revisit_id and call.due_on == call_on
    # A call, not an email: the next care email must not close it without anybody calling.
    assert call.channel is ContactChannel.PHONE
    assert call.notes == "planned by cadence\n\ncustomer feedback: not solved\n还是不对"
    assert recorded.email.follow_up_on == call_on


def test_a_departed_account_managers_customer_goes_to_the_branch_manager_flagged(
    engine: Engine,
) -> None:
    row = make_care_email(engine, manager_active=False)

    answer(engine, row.outbox_id, Answer.NOT_SOLVED)

    [follow_up] = open_revisits(engine, row.customer_id)
    assert follow_up.assignee_id == row.branch_manager_id
    assert follow_up.needs_reassignment is True
    recorded = load_care_email(engine, row.outbox_id)
    assert recorded is not None
    with session_scope(engine) as session:
        branch_manager = session.get(Staff, row.branch_manager_id)
        assert branch_manager is not None
        # The page names who will call: the branch manager, not the departed account manager.
        assert recorded.follow_up_by == branch_manager.name


def test_a_customer_nobody_can_be_assigned_gets_the_contact_but_no_orphan_revisit(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    row = make_care_email(engine, assignable=False)
    before = counts(engine)

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED, "电话 13812345678")

    assert recorded is not None and recorded.email.answer is Answer.NOT_SOLVED
    assert recorded.email.follow_up_revisit_id is None
    assert counts(engine) == (before[0] + 1, before[1], before[2] + 1)
    assert "no one to assign (no_branch)" in caplog.text
    assert "13812345678" not in caplog.text  # the customer's words never reach the log


def test_the_follow_up_avoids_holidays_and_days_already_holding_a_revisit(engine: Engine) -> None:
    row = make_care_email(engine)
    with session_scope(engine) as session:
        # The CN calendar make_care_email added (for complaint SLAs), with a holiday.
        calendar = session.scalars(
            select(BusinessCalendar).where(BusinessCalendar.code == "CN")
        ).one()
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
    # The winner decides: a call was opened exactly when "not solved" won.
    [winner] = [r for r in recorded if not r.duplicate]
    expected_calls = 1 if winner.email.answer is Answer.NOT_SOLVED else 0
    assert len(open_revisits(engine, row.customer_id)) == expected_calls


@pytest.mark.postgres
def test_a_revisit_planned_between_check_and_insert_is_retried_into_the_call(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revisits flow opens a revisit for the customer while the answer is being recorded:
    the answer's insert hits the one-open-revisit index, and the retry makes that one the call.
    (PostgreSQL only: on SQLite the answer holds the write lock, so planning waits instead.)"""
    from tasks.revisits.rules.care_feedback import follow_up_due

    row = make_care_email(pg_engine)
    planted: list[int] = []
    calls: list[int] = []

    def plan_meanwhile(*args: Any, **kwargs: Any) -> date:
        # Called after the open-revisit check: commit what a concurrent planning run would.
        calls.append(1)
        if not planted:
            planted.append(_open_revisit(pg_engine, row, date(2026, 12, 10)))
        return follow_up_due(*args, **kwargs)

    monkeypatch.setattr("tasks.revisits.care_feedback.follow_up_due", plan_meanwhile)

    recorded = answer(pg_engine, row.outbox_id, Answer.NOT_SOLVED)

    assert len(calls) == 2  # the first attempt failed on the index and was run again
    assert recorded is not None and recorded.email.follow_up_revisit_id == planted[0]
    [call] = open_revisits(pg_engine, row.customer_id)
    assert (call.id, call.due_on, call.channel) == (planted[0], FRIDAY, ContactChannel.PHONE)
    assert counts(pg_engine) == (1, 1, 1)  # one contact, one revisit, one answer


def test_a_customer_whose_class_was_cleared_keeps_the_class_of_their_last_revisit(
    engine: Engine,
) -> None:
    row = make_care_email(engine)
    with session_scope(engine) as session:
        session.add(
            Revisit(
                customer_id=row.customer_id,
                abc_class=AbcClass.B,
                channel=ContactChannel.EMAIL,
                due_on=date(2026, 11, 17),
                status=RevisitStatus.DONE,
            )
        )
        customer = session.get(Customer, row.customer_id)
        assert customer is not None
        customer.abc_class = None

    answer(engine, row.outbox_id, Answer.NOT_SOLVED)

    [call] = open_revisits(engine, row.customer_id)
    assert call.abc_class is AbcClass.B


def test_an_answer_before_the_250_was_read_completes_the_emails_revisit_and_opens_a_call(
    engine: Engine,
) -> None:
    """The care email's revisit still waits for the settle step (``email_queued``) when the
    customer answers "not solved": the answer shows the email arrived, so that revisit is done
    and the call is a new open revisit (never the email's revisit left waiting)."""
    row = make_care_email(engine)
    queued_id = _open_revisit(engine, row, date(2026, 11, 18))
    with session_scope(engine) as session:
        queued = session.get(Revisit, queued_id)
        assert queued is not None
        queued.outcome = "email_queued"

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED, "还是不对")

    assert recorded is not None
    [call] = open_revisits(engine, row.customer_id)
    assert call.id != queued_id and call.channel is ContactChannel.PHONE
    assert recorded.email.follow_up_revisit_id == call.id
    with session_scope(engine) as session:
        done = session.get(Revisit, queued_id)
        assert done is not None
        assert (done.status, done.outcome, done.completed_at) == (
            RevisitStatus.DONE,
            "email_sent",
            NOW,
        )
