"""``/f/{token}``, the care-feedback page, against real SQLite files and real PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from crm_core.signing import sign
from crm_db.enums import ContactOutcome, RevisitStatus
from crm_db.models import CareFeedback, ContactHistory, Revisit, Staff
from crm_db.session import session_scope
from crm_web.security import CONTENT_SECURITY_POLICY
from tasks.mail.links import care_feedback_url
from tests.crm_web.factories import NOW, SIGNING_KEY, Clock
from tests.factories import make_care_email

FORM = {"content-type": "application/x-www-form-urlencoded"}


def feedback_token(
    outbox_id: object,
    *,
    issued_at: datetime = NOW,
    valid_for: timedelta = timedelta(days=30),
    key: str = SIGNING_KEY,
    purpose: str = "care_feedback",
) -> str:
    """A token as ``tasks/mail/links.py`` makes it (30-day expiry)."""
    return sign(key.encode(), purpose, {"message": outbox_id}, issued_at + valid_for)


def post(client: TestClient, token: str, body: str | bytes, **headers: str) -> httpx.Response:
    response: httpx.Response = client.post(f"/f/{token}", content=body, headers={**FORM, **headers})
    return response


def written(engine: Engine) -> tuple[int, int, int]:
    """Rows in care_feedback, contact_history and open revisits."""
    with session_scope(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(CareFeedback)) or 0,
            session.scalar(select(func.count()).select_from(ContactHistory)) or 0,
            session.scalar(
                select(func.count())
                .select_from(Revisit)
                .where(Revisit.status == RevisitStatus.OPEN)
            )
            or 0,
        )


def test_get_asks_the_question_in_the_customers_language_and_writes_nothing(
    engine: Engine, client: TestClient
) -> None:
    row = make_care_email(engine)
    token = feedback_token(row.outbox_id, issued_at=NOW - timedelta(days=3))

    for _ in range(3):  # scanners and previews may fetch it several times
        response = client.get(f"/f/{token}", headers={"accept-language": "en"})
        assert response.status_code == 200
    assert written(engine) == (0, 0, 0)

    page = response.text
    assert '<html lang="zh-CN">' in page  # the customer's locale beats the browser's
    assert "您的问题解决了吗？" in page
    assert "2026-11-17" in page  # the day the email was queued, in the customer's time zone
    assert re.findall(r'<input type="radio" name="answer" value="(\w+)" required>', page) == [
        "solved",
        "not_solved",
    ]
    assert '<textarea id="comment" name="comment" maxlength="2000"' in page
    assert '<form method="post">' in page
    for name, value in {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
    }.items():
        assert response.headers[name] == value


def test_the_emails_buttons_preselect_an_answer(engine: Engine, client: TestClient) -> None:
    row = make_care_email(engine)
    token = feedback_token(row.outbox_id)
    page = client.get(f"/f/{token}?answer=not_solved").text
    assert re.findall(r'value="(\w+)" required checked>', page) == ["not_solved"]
    # An unknown preselection is ignored, not an error.
    page = client.get(f"/f/{token}?answer=maybe").text
    assert " checked>" not in page
    assert written(engine) == (0, 0, 0)


def test_post_solved_thanks_the_customer_and_records_the_answer(
    engine: Engine, client: TestClient
) -> None:
    row = make_care_email(engine)

    response = post(client, feedback_token(row.outbox_id), "answer=solved&comment=")

    assert response.status_code == 200
    assert "感谢您的回复" in response.text
    assert "很高兴问题已经解决。" in response.text
    assert "回复于 2026-11-23" in response.text
    assert written(engine) == (1, 1, 0)
    with session_scope(engine) as session:
        outcome = session.scalars(select(ContactHistory.outcome)).one()
    assert outcome is ContactOutcome.COMPLETED


def test_post_not_solved_promises_a_call_on_the_follow_up_day(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    row = make_care_email(engine)
    comment = "余额 <b>还是</b> 不对\r\n请尽快联系"

    response = post(
        client,
        feedback_token(row.outbox_id),
        httpx.QueryParams({"answer": "not_solved", "comment": comment}).__str__(),
        **{"accept-language": "en"},
    )

    assert response.status_code == 200
    # Monday 17:30 in Shanghai: the follow-up is due Tuesday.
    assert "计划于 2026-11-24 致电。" in response.text
    assert "<b>" not in response.text  # the comment is not echoed, let alone unescaped
    assert written(engine) == (1, 1, 1)
    with session_scope(engine) as session:
        feedback = session.scalars(select(CareFeedback)).one()
        contact = session.get(ContactHistory, feedback.contact_id)
        assert contact is not None and contact.occurred_at == clock.now
        assert contact.outcome is ContactOutcome.ISSUE_RAISED
        assert contact.notes == "customer feedback: not solved\n余额 <b>还是</b> 不对\n请尽快联系"
        revisit = session.get(Revisit, feedback.follow_up_revisit_id)
        assert revisit is not None and revisit.assignee_id == row.account_manager_id


def test_an_email_without_an_issue_offers_only_please_call_me(
    engine: Engine, client: TestClient
) -> None:
    row = make_care_email(engine, last_issue=None)
    token = feedback_token(row.outbox_id)

    page = client.get(f"/f/{token}?answer=call_me").text
    assert "有什么可以帮您的吗？" in page and "您的问题解决了吗？" not in page
    assert re.findall(r'name="answer" value="(\w+)" required', page) == ["call_me"]
    assert re.findall(r'value="(\w+)" required checked>', page) == ["call_me"]

    # An answer this email did not offer is a bad form: 400, nothing written.
    refused = post(client, token, "answer=not_solved")
    assert refused.status_code == 400 and "请选择“请给我打电话”后再提交。" in refused.text
    assert written(engine) == (0, 0, 0)

    response = post(client, token, "answer=call_me")
    assert response.status_code == 200
    with session_scope(engine) as session:
        feedback = session.scalars(select(CareFeedback)).one()
        contact = session.get(ContactHistory, feedback.contact_id)
        revisit = session.get(Revisit, feedback.follow_up_revisit_id)
        assert contact is not None and contact.outcome is ContactOutcome.COMPLETED
        assert contact.notes == "customer feedback: please call me"
        assert revisit is not None and revisit.assignee_id == row.account_manager_id
        manager = session.get(Staff, row.account_manager_id)
        assert manager is not None
    # Who calls, with no space before 会给您打电话, and on which day.
    assert f"{manager.name}会给您打电话。" in response.text
    assert "计划于 2026-11-24 致电。" in response.text
    assert written(engine) == (1, 1, 1)


def test_the_page_speaks_the_language_of_the_email(engine: Engine, client: TestClient) -> None:
    row = make_care_email(engine, locale="en")  # the customer's own locale is zh-CN
    page = client.get(f"/f/{feedback_token(row.outbox_id)}").text
    assert '<html lang="en">' in page and "Has your issue been solved?" in page


def test_not_solved_without_anyone_to_call_promises_no_call(
    engine: Engine, client: TestClient
) -> None:
    row = make_care_email(engine, assignable=False)
    response = post(client, feedback_token(row.outbox_id), "answer=not_solved")
    assert response.status_code == 200
    assert "很抱歉问题还没有解决。您的回复已记入您的客户档案。" in response.text
    # No promise nobody will keep: no call, and no vague "we will contact you".
    assert "打电话" not in response.text and "致电" not in response.text
    assert "联系" not in response.text
    assert written(engine) == (1, 1, 0)


def test_a_second_answer_shows_the_first_and_changes_nothing(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    row = make_care_email(engine)
    token = feedback_token(row.outbox_id)
    assert post(client, token, "answer=not_solved").status_code == 200
    clock.advance(timedelta(hours=2))

    again = post(client, token, "answer=solved")
    shown = client.get(f"/f/{token}")

    assert again.status_code == 200
    assert "这封邮件已经回复过；以您的第一次回答为准。" in again.text
    assert "很抱歉问题还没有解决。" in again.text
    assert shown.status_code == 200 and '<form method="post">' not in shown.text
    assert "很抱歉问题还没有解决。" in shown.text
    assert written(engine) == (1, 1, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("comment=hello", "请选择两个回答中的一个。"),
        ("answer=perhaps", "请选择两个回答中的一个。"),
        ("answer=solved&answer=not_solved", "请选择两个回答中的一个。"),
        ("answer=solved&comment=" + "x" * 2001, "留言最多 2000 个字符。"),
        ("answer=solved&comment=%00", "留言最多 2000 个字符。"),
    ],
    ids=["missing", "unknown", "twice", "comment too long", "nul"],
)
def test_a_bad_form_answers_400_with_the_form_and_writes_nothing(
    engine: Engine, client: TestClient, body: str, message: str
) -> None:
    row = make_care_email(engine)

    response = post(client, feedback_token(row.outbox_id), body)

    assert response.status_code == 400
    assert message in response.text
    assert '<form method="post">' in response.text
    assert written(engine) == (0, 0, 0)


def test_only_url_encoded_forms_are_accepted(engine: Engine, client: TestClient) -> None:
    row = make_care_email(engine)
    response = client.post(
        f"/f/{feedback_token(row.outbox_id)}",
        content=b'{"answer": "solved"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 415
    assert written(engine) == (0, 0, 0)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_links_get_the_unsubscribe_404_page_byte_for_byte(
    engine: Engine, client: TestClient, method: str
) -> None:
    row = make_care_email(engine)
    digest = make_care_email(engine, kind="revisit_digest")
    tokens = {
        "expired": feedback_token(row.outbox_id, issued_at=NOW - timedelta(days=31)),
        "other key": feedback_token(row.outbox_id, key="another-key-0123456789abcdef-xyz"),
        "other purpose": feedback_token(row.outbox_id, purpose="unsubscribe"),
        "tampered": feedback_token(row.outbox_id)[:-2] + "xx",
        "not a care email": feedback_token(digest.outbox_id),
        "unknown email": feedback_token(987_654),
        "id not an integer": feedback_token(str(row.outbox_id)),
        "id a boolean": feedback_token(True),
        "garbage": "not-a-token",
        "huge": "A" * 5000,
    }
    headers = {"accept-language": "en", **FORM}
    reference = client.get("/u/not-a-token", headers=headers)
    assert reference.status_code == 404

    for name, token in tokens.items():
        response = client.request(method, f"/f/{token}", content=b"answer=solved", headers=headers)
        assert response.status_code == 404, name
        assert response.content == reference.content, name
    assert written(engine) == (0, 0, 0)


def test_links_built_by_delivery_work_for_30_days(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    row = make_care_email(engine)
    url = care_feedback_url(
        row.outbox_id, key=SIGNING_KEY.encode(), base_url="https://crm.example.test", now=NOW
    )
    assert client.get(url + "?answer=solved").status_code == 200
    clock.advance(timedelta(days=30))
    assert client.get(url).status_code == 404
