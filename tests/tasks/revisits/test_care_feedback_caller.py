"""Who the care-feedback page says will call, and on which day, against real SQLite files and
PostgreSQL. The rule (``tasks.revisits.rules.care_feedback.call_day``): the call revisit's planned
day when it lies after the answer - a new call is planned on the first free working day after
the answer, on the customer's branch calendar; when the customer's open revisit is overdue it
becomes the call and stays due then (it escalates), and the page names the first working day
after the answer, when the next digest lists it."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select

from crm_db.enums import AbcClass, ContactChannel, RevisitStatus
from crm_db.models import Branch, BusinessCalendar, CalendarDay, Customer, Region, Revisit, Staff
from crm_db.session import session_scope
from tasks.revisits.care_feedback import load_care_email
from tasks.revisits.rules.care_feedback import Answer, call_day
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_care_email
from tests.tasks.revisits.test_care_feedback import FRIDAY, NOW, SHANGHAI, answer, open_revisits

THURSDAY = date(2026, 11, 19)
MONDAY = date(2026, 11, 23)


def _name(engine: Engine, staff_id: int) -> str:
    with session_scope(engine) as session:
        staff = session.get(Staff, staff_id)
        assert staff is not None
        return staff.name


def test_an_open_revisit_of_a_departed_manager_becomes_the_branch_managers_call(
    engine: Engine,
) -> None:
    row = make_care_email(engine, manager_active=False)
    with session_scope(engine) as session:
        # Planned while the account manager was still here; overdue since Tuesday.
        session.add(
            Revisit(
                customer_id=row.customer_id,
                assignee_id=row.account_manager_id,
                abc_class=AbcClass.C,
                channel=ContactChannel.EMAIL,
                due_on=date(2026, 11, 17),
            )
        )

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED, "还是不对")

    assert recorded is not None
    [call] = open_revisits(engine, row.customer_id)
    assert (call.assignee_id, call.needs_reassignment) == (row.branch_manager_id, True)
    assert call.due_on == date(2026, 11, 17)  # stays overdue: it escalates on its own schedule
    email = recorded.email
    assert (email.follow_up_by, email.follow_up_role) == (
        _name(engine, row.branch_manager_id),
        "branch_manager",
    )
    assert email.call_on == FRIDAY  # not the overdue day: the next working day after the answer


def test_a_call_whose_assignee_left_after_the_answer_names_the_branch_manager(
    engine: Engine,
) -> None:
    row = make_care_email(engine, last_issue=None)
    recorded = answer(engine, row.outbox_id, Answer.CALL_ME)
    assert recorded is not None and recorded.email.follow_up_role == "account_manager"
    assert recorded.email.follow_up_by == _name(engine, row.account_manager_id)
    with session_scope(engine) as session:
        staff = session.get(Staff, row.account_manager_id)
        assert staff is not None
        staff.active = False

    later = load_care_email(engine, row.outbox_id, timezone=SHANGHAI)

    assert later is not None
    assert (later.follow_up_by, later.follow_up_role) == (
        _name(engine, row.branch_manager_id),
        "branch_manager",
    )
    assert later.call_on == FRIDAY


def test_the_call_falls_on_the_branch_calendars_next_working_day(engine: Engine) -> None:
    row = make_care_email(engine)
    with session_scope(engine) as session:
        # The default calendar (CN, made by make_care_email with no holidays) works on Friday;
        # the customer's region keeps its own, where Friday is a holiday.
        local = BusinessCalendar(code="LOCAL", name="Local")
        session.add(local)
        session.flush()
        session.add(CalendarDay(calendar_id=local.id, day=FRIDAY, is_working=False))
        customer = session.get(Customer, row.customer_id)
        assert customer is not None
        region = session.scalar(
            select(Region)
            .join(Branch, Branch.region_id == Region.id)
            .where(Branch.id == customer.branch_id)
        )
        assert region is not None
        region.calendar_id = local.id

    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED)

    assert recorded is not None and recorded.email.call_on == MONDAY
    [call] = open_revisits(engine, row.customer_id)
    assert call.due_on == MONDAY and call.status is RevisitStatus.OPEN


def test_nobody_to_assign_names_nobody_and_promises_no_day(engine: Engine) -> None:
    row = make_care_email(engine, assignable=False)
    recorded = answer(engine, row.outbox_id, Answer.NOT_SOLVED)
    assert recorded is not None
    assert (recorded.email.follow_up_by, recorded.email.call_on) == (None, None)
    assert recorded.email.answered_at == NOW


@pytest.mark.parametrize(
    ("planned", "expected"),
    [
        (FRIDAY, FRIDAY),  # a new call: its planned day
        (MONDAY, MONDAY),  # Friday taken by another revisit: the day it got
        (THURSDAY, FRIDAY),  # due the day of the answer: the next working day
        (date(2026, 11, 2), FRIDAY),  # overdue: the next working day
    ],
)
def test_call_day(planned: date, expected: date) -> None:
    assert call_day(planned, THURSDAY, WorkCalendar()) == expected


def test_call_day_skips_the_weekend() -> None:
    assert call_day(date(2026, 11, 1), FRIDAY, WorkCalendar()) == MONDAY
