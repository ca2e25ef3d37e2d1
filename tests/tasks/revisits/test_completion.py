from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Revisit
from crm_db.session import session_scope
from tasks.revisits.completion import RevisitOutcomeError, record_outcome
from tests.factories import make_customer, make_org

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)


def _open_revisit(engine: Engine) -> int:
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.B)
        revisit = Revisit(
            customer_id=customer.id,
            assignee_id=org.account_manager.id,
            abc_class=AbcClass.B,
            channel=ContactChannel.PHONE,
            due_on=date(2026, 11, 23),
        )
        session.add(revisit)
        session.flush()
        return revisit.id


def test_attempt_keeps_open_then_completion_closes(engine: Engine) -> None:
    rid = _open_revisit(engine)
    with session_scope(engine) as session:
        result = record_outcome(session, rid, ContactOutcome.NO_ANSWER, now=NOW)
    assert not result.closed
    with session_scope(engine) as session:
        result = record_outcome(session, rid, ContactOutcome.COMPLETED, now=NOW, notes="ok")
    assert result.closed
    with session_scope(engine) as session:
        revisit = session.get(Revisit, rid)
        assert revisit is not None and revisit.status is RevisitStatus.DONE
        outcomes = session.scalars(select(ContactHistory.outcome).order_by(ContactHistory.id))
        assert list(outcomes) == [ContactOutcome.NO_ANSWER, ContactOutcome.COMPLETED]


def test_double_submit_is_a_no_op_and_conflicts_are_refused(engine: Engine) -> None:
    rid = _open_revisit(engine)
    for _ in range(2):
        with session_scope(engine) as session:
            last = record_outcome(session, rid, ContactOutcome.COMPLETED, now=NOW)
    assert last.already_recorded
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(ContactHistory)) == 1
    with pytest.raises(RevisitOutcomeError, match="already done"), session_scope(engine) as s:
        record_outcome(s, rid, ContactOutcome.ISSUE_RAISED, now=NOW)
    with pytest.raises(RevisitOutcomeError, match="does not exist"), session_scope(engine) as s:
        record_outcome(s, 999_999, ContactOutcome.COMPLETED, now=NOW)


def test_closing_keeps_the_notes_that_say_why_the_revisit_was_opened(engine: Engine) -> None:
    rid = _open_revisit(engine)
    with session_scope(engine) as session:
        revisit = session.get(Revisit, rid)
        assert revisit is not None
        revisit.notes = "customer feedback: not solved\n余额不对"
    with session_scope(engine) as session:
        record_outcome(session, rid, ContactOutcome.COMPLETED, now=NOW, notes="已退款")
    with session_scope(engine) as session:
        revisit = session.get(Revisit, rid)
        assert revisit is not None
        assert revisit.notes == "customer feedback: not solved\n余额不对\n\n已退款"
