"""Recording an answer (``tasks.surveys.answers``) on SQLite and PostgreSQL: once per
invitation, only while the link answers, a repeat is harmless, and 20 concurrent posts of one
link record exactly one answer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from crm_db.enums import InvitationStatus, ResponseSource, SurveyKind
from crm_db.models import SurveyResponse
from crm_db.session import session_scope
from tasks.surveys.answers import Outcome, record_answer, record_link_answer
from tasks.surveys.rules.answers import Answer
from tests.tasks.surveys.answer_factories import invitation_status, make_invitation, responses

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def test_records_once_and_marks_responded(engine: Engine) -> None:
    row = make_invitation(engine, now=NOW)
    answer = Answer(9, 4, None, "服务很好")
    first = record_link_answer(engine, row.invitation_id, answer, now=NOW)
    assert first.outcome is Outcome.RECORDED
    assert first.invitation is not None and first.invitation.answer == answer
    assert invitation_status(engine, row.invitation_id) is InvitationStatus.RESPONDED
    with session_scope(engine) as session:
        stored = session.scalars(select(SurveyResponse)).one()
        assert (stored.score, stored.product_rating, stored.service_rating) == (9, 4, None)
        assert (stored.comment, stored.source) == ("服务很好", ResponseSource.WEB)
        assert stored.responded_at == NOW and stored.recorded_at == NOW
        assert stored.recorded_by_id is None
    # The same answer again (a double click, later): nothing written, the same thanks.
    again = record_link_answer(engine, row.invitation_id, answer, now=NOW + timedelta(hours=1))
    assert again.outcome is Outcome.REPEATED
    assert again.invitation is not None and again.invitation.responded_at == NOW
    # Another answer to a used link is refused.
    other = record_link_answer(engine, row.invitation_id, Answer(2), now=NOW)
    assert other.outcome is Outcome.REFUSED
    assert responses(engine) == 1


@pytest.mark.parametrize(
    "status",
    [InvitationStatus.PENDING, InvitationStatus.EXPIRED, InvitationStatus.RESPONDED],
)
def test_link_refused_unless_sent_or_reminded(engine: Engine, status: InvitationStatus) -> None:
    row = make_invitation(engine, now=NOW, status=status)
    assert record_link_answer(engine, row.invitation_id, Answer(7), now=NOW).outcome is (
        Outcome.REFUSED
    )
    assert responses(engine) == 0
    assert invitation_status(engine, row.invitation_id) is status


def test_link_refused_after_expiry_even_before_the_flow_expires_it(engine: Engine) -> None:
    row = make_invitation(engine, now=NOW, status=InvitationStatus.REMINDED)
    late = row.expires_at
    assert record_link_answer(engine, row.invitation_id, Answer(7), now=late).outcome is (
        Outcome.REFUSED
    )
    just_in_time = row.expires_at - timedelta(seconds=1)
    recorded = record_link_answer(engine, row.invitation_id, Answer(7), now=just_in_time)
    assert recorded.outcome is Outcome.RECORDED
    assert record_link_answer(engine, 999_999, Answer(7), now=NOW).outcome is Outcome.REFUSED


def test_typed_in_answer_keeps_its_own_time_and_recorder(engine: Engine) -> None:
    row = make_invitation(engine, now=NOW, kind=SurveyKind.CSAT, status=InvitationStatus.EXPIRED)
    called = NOW - timedelta(days=1)
    later = NOW + timedelta(days=20)  # typed in long after the invitation expired
    with session_scope(engine) as session:
        result = record_answer(
            session,
            row.invitation_id,
            Answer(2, None, 1, "等了很久"),
            now=later,
            source=ResponseSource.PHONE,
            responded_at=called,
        )
        assert result.outcome is Outcome.RECORDED
    with session_scope(engine) as session:
        stored = session.scalars(select(SurveyResponse)).one()
        assert (stored.responded_at, stored.recorded_at) == (called, later)
        assert stored.source is ResponseSource.PHONE
    # A call after the expiry is refused with the field to blame.
    other = make_invitation(engine, now=NOW)
    with session_scope(engine) as session:
        refused = record_answer(
            session,
            other.invitation_id,
            Answer(8),
            now=later,
            source=ResponseSource.PAPER,
            responded_at=other.expires_at + timedelta(hours=1),
        )
    assert refused.outcome is Outcome.REFUSED
    assert refused.problem is not None and refused.problem.field == "responded_at"
    assert responses(engine) == 1


def test_twenty_parallel_posts_record_exactly_one(engine: Engine) -> None:
    row = make_invitation(engine, now=NOW)
    barrier = threading.Barrier(20)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def post(index: int) -> None:
        # Half post the same answer, half a different one each.
        answer = Answer(10, 5, 5, "同一个回答") if index % 2 == 0 else Answer(index % 11)
        try:
            barrier.wait(timeout=30)
            outcome = record_link_answer(engine, row.invitation_id, answer, now=NOW).outcome
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)
            return
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(outcomes) == 20
    assert outcomes.count(Outcome.RECORDED) == 1
    assert responses(engine) == 1
    assert invitation_status(engine, row.invitation_id) is InvitationStatus.RESPONDED
    with session_scope(engine) as session:
        stored = session.scalars(select(SurveyResponse)).one()
    winner_same = stored.score == 10
    # Every post that repeated the winner's answer was told so; the rest were refused.
    assert outcomes.count(Outcome.REPEATED) == (9 if winner_same else 0)
    assert outcomes.count(Outcome.REFUSED) == (10 if winner_same else 19)
