"""The survey page's "treat this as a complaint" box (issues #17, #18) on SQLite and PostgreSQL:
ticked with a suggestion, the answer's POST opens a complaint linked to the response, in the
answer's transaction, once (a repeat shows the same thanks and writes nothing); a customer's
recently resolved complaint is reopened instead; ticked without a suggestion is a form error;
unticked raises nothing."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from crm_db.defaults import ensure_default_policies
from crm_db.enums import ComplaintEventKind, ComplaintSource, ComplaintStatus, EventSource, Severity
from crm_db.models import Complaint, ComplaintEvent, OutboxMessage, SurveyResponse
from crm_db.session import session_scope
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.rules.lifecycle import Transition
from tests.crm_web.factories import NOW
from tests.crm_web.test_survey_answer import post
from tests.tasks.surveys.answer_factories import make_invitation, responses

COMMENT = "加油卡充值<script>alert(1)</script>三天没到账"


def with_policies(engine: Engine) -> None:
    """The SLA policies ``crm db upgrade`` installs: a complaint copies its targets from them."""
    with session_scope(engine) as session:
        ensure_default_policies(session, now=NOW)


def complaints(engine: Engine) -> list[Complaint]:
    with session_scope(engine) as session:
        found = list(session.scalars(select(Complaint).order_by(Complaint.id)))
        session.expunge_all()
        return found


def response_id(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.execute(select(SurveyResponse.id)).scalar_one()


def test_ticked_box_opens_one_complaint_linked_to_the_answer(
    engine: Engine, client: TestClient
) -> None:
    with_policies(engine)
    row = make_invitation(engine, now=NOW)
    page = client.get(f"/s/{row.token}?score=3")
    assert 'name="as_complaint" value="1"' in page.text and "把这条意见作为投诉处理" in page.text
    fields = {"score": "3", "suggestion": COMMENT, "as_complaint": "1"}
    thanks = post(client, row.token, fields)
    assert thanks.status_code == 200
    [complaint] = complaints(engine)
    assert complaint.source is ComplaintSource.SURVEY
    assert complaint.source_ref == f"survey:{response_id(engine)}"
    assert complaint.customer_id == row.customer_id and complaint.description == COMMENT
    assert complaint.status is ComplaintStatus.NEW and complaint.received_at == NOW
    assert f"受理编号 {complaint.external_id}" in thanks.text
    assert "<script>" not in thanks.text and "&lt;script&gt;" in thanks.text
    # A double click: the same thanks, reference included, and nothing written twice.
    again = post(client, row.token, fields)
    assert (again.status_code, again.text) == (200, thanks.text)
    assert len(complaints(engine)) == 1 and responses(engine) == 1
    with session_scope(engine) as session:
        receipts = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "complaint_receipt")
        )
    assert receipts == 1


def test_ticked_box_reopens_the_customers_resolved_complaint(
    engine: Engine, client: TestClient
) -> None:
    with_policies(engine)
    row = make_invitation(engine, now=NOW, locale="en")
    received = NOW - timedelta(days=6)
    with session_scope(engine) as session:
        complaint_id = open_complaint(
            session,
            Intake("CP20260000077", row.customer_id, None, "充值到账", Severity.NORMAL, received),
        ).id
    for n, step in enumerate((Transition.ACK, Transition.RESOLVE), start=1):
        with session_scope(engine) as session:
            apply_event(
                session, complaint_id, step, received + timedelta(days=n), None, EventSource.CLI
            )
    thanks = post(
        client, row.token, {"score": "1", "suggestion": "Still broken", "as_complaint": "1"}
    )
    assert thanks.status_code == 200
    assert "recorded as a complaint, reference CP20260000077" in thanks.text
    [complaint] = complaints(engine)
    assert complaint.status is ComplaintStatus.IN_PROGRESS and complaint.reopened_count == 1
    with session_scope(engine) as session:
        reopen = session.scalars(
            select(ComplaintEvent).where(
                ComplaintEvent.detail_key == f"survey:{response_id(engine)}"
            )
        ).one()
        assert reopen.kind is ComplaintEventKind.TRANSITION and reopen.at == NOW
        assert reopen.note is not None and "Still broken" in reopen.note


def test_ticked_without_a_suggestion_is_a_form_error(engine: Engine, client: TestClient) -> None:
    row = make_invitation(engine, now=NOW)
    page = post(client, row.token, {"score": "2", "suggestion": "  \n", "as_complaint": "1"})
    assert page.status_code == 400
    assert "请先在上面写下您的意见" in page.text
    assert 'value="1" aria-describedby="as-complaint-hint" checked' in page.text
    forged = post(client, row.token, {"score": "2", "suggestion": "x", "as_complaint": "yes"})
    assert forged.status_code == 400
    assert responses(engine) == 0 and complaints(engine) == []
    # Unticked: the answer alone (the detractor loop follows it up, not the complaint desk).
    assert post(client, row.token, {"score": "2", "suggestion": COMMENT}).status_code == 200
    assert responses(engine) == 1 and complaints(engine) == []
