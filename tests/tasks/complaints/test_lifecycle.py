"""Lifecycle writes on both backends: the row follows its events, illegal moves write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from crm_db.defaults import ensure_default_policies
from crm_db.enums import AbcClass, ComplaintSource, ComplaintStatus, EventSource, Severity
from crm_db.models import ComplaintEvent
from crm_db.session import session_scope
from tasks.complaints.lifecycle import Intake, apply_event, assign, open_complaint
from tasks.complaints.rules.lifecycle import IllegalTransitionError, Transition
from tests.factories import make_customer, make_org

RECEIVED = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Monday 09:00 Shanghai


def test_the_row_follows_its_events(engine: Engine) -> None:
    with session_scope(engine) as session:
        ensure_default_policies(session, now=RECEIVED)
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.A)
        intake = Intake(
            external_id="CP1",
            customer_id=customer.id,
            branch_id=org.branch.id,
            category="计量误差",
            severity=Severity.HIGH,
            received_at=RECEIVED,
            customer_title="加油量核对",
            source=ComplaintSource.CLI,
        )
        complaint = open_complaint(session, intake)
        complaint_id = complaint.id
        # high-a: 120 clock minutes to answer, 540 business minutes (one working day) to solve
        assert complaint.first_response_due_at == RECEIVED + timedelta(minutes=120)
        assert complaint.resolution_due_at == RECEIVED + timedelta(hours=9)
        assert open_complaint(session, intake).id == complaint_id  # idempotent
    steps = [
        (Transition.ACK, 1),
        (Transition.START, 2),
        (Transition.WAIT, 3),
        (Transition.RESUME, 5),
    ]
    for transition, hours in steps:
        with session_scope(engine) as session:
            apply_event(
                session,
                complaint_id,
                transition,
                RECEIVED + timedelta(hours=hours),
                org.account_manager.id,
                EventSource.CLI,
            )
    with session_scope(engine) as session:
        done = assign(
            session,
            complaint_id,
            org.branch_manager.id,
            RECEIVED + timedelta(hours=6),
            None,
            EventSource.CLI,
        )
        assert done.status is ComplaintStatus.IN_PROGRESS
        assert done.assignee_id == org.branch_manager.id
        assert done.paused_business_minutes == 120
        # The 2 paused hours move the due time: Monday 18:00 -> Tuesday 11:00 Shanghai.
        assert done.resolution_due_at == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
        assert done.acknowledged_at == RECEIVED + timedelta(hours=1)
    late = RECEIVED + timedelta(hours=7)
    with (
        pytest.raises(IllegalTransitionError, match="complaint CP1: cannot verify"),
        session_scope(engine) as session,
    ):
        apply_event(session, complaint_id, Transition.VERIFY, late, None, EventSource.CLI)
    with (
        pytest.raises(ValueError, match="not after its last event"),
        session_scope(engine) as session,
    ):
        apply_event(session, complaint_id, Transition.RESOLVE, RECEIVED, None, EventSource.CLI)
    with session_scope(engine) as session:
        count = session.scalar(select(func.count()).select_from(ComplaintEvent))
        assert count == 6  # intake, four transitions, one assignment: nothing half-written


def test_one_complaint_per_source_ref(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        ensure_default_policies(session, now=RECEIVED)
        org = make_org(session)
        customer = make_customer(session, org)
        for n in (1, 2):
            open_complaint(
                session,
                Intake(
                    external_id=f"CP{n}",
                    customer_id=customer.id,
                    branch_id=org.branch.id,
                    category="回访未解决",
                    severity=Severity.NORMAL,
                    received_at=RECEIVED,
                    source=ComplaintSource.CARE_FEEDBACK,
                    source_ref="revisit:1",
                ),
            )
