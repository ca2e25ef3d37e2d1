"""``/r/{token}``, the revisit outcome page, against real SQLite files and real PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from crm_core.signing import sign
from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus, StaffRole
from crm_db.models import ContactHistory, Revisit, Staff
from crm_db.session import session_scope
from crm_web.access_log import redact_path
from crm_web.revisit_outcome import (
    MAX_BODY_BYTES,
    FormError,
    LinkClaims,
    OutcomeForm,
    Saved,
    parse_form_body,
    parse_outcome_form,
    save_outcome,
)
from crm_web.security import CONTENT_SECURITY_POLICY
from tests.crm_web.factories import NOW, SIGNING_KEY, Clock
from tests.factories import make_customer, make_org, make_staff

FORM = {"content-type": "application/x-www-form-urlencoded"}


# --- factories (plain functions) -------------------------------------------------------------


@dataclass(frozen=True)
class RevisitRow:
    revisit_id: int
    assignee_id: int
    branch_manager_id: int


def make_revisit(
    engine: Engine,
    *,
    customer_name: str | None = None,
    staff_locale: str = "zh-CN",
    channel: ContactChannel = ContactChannel.PHONE,
    status: RevisitStatus = RevisitStatus.OPEN,
    outcome: str | None = None,
    notes: str | None = None,
) -> RevisitRow:
    with session_scope(engine) as session:
        org = make_org(session)
        org.account_manager.locale = staff_locale
        org.branch_manager.locale = staff_locale
        fields = {} if customer_name is None else {"name": customer_name}
        customer = make_customer(session, org, abc_class=AbcClass.B, **fields)
        revisit = Revisit(
            customer_id=customer.id,
            assignee_id=org.account_manager.id,
            abc_class=AbcClass.B,
            channel=channel,
            due_on=date(2026, 11, 20),
            status=status,
            outcome=outcome,
            notes=notes,
            completed_at=None if status is RevisitStatus.OPEN else NOW - timedelta(days=2),
        )
        session.add(revisit)
        session.flush()
        return RevisitRow(revisit.id, org.account_manager.id, org.branch_manager.id)


def outcome_token(
    revisit_id: object,
    staff_id: object,
    *,
    issued_at: datetime = NOW,
    valid_for: timedelta = timedelta(days=30),
    key: str = SIGNING_KEY,
    purpose: str = "revisit_outcome",
) -> str:
    """A token as ``tasks/mail/links.py`` makes it (30-day expiry)."""
    payload = {"revisit": revisit_id, "staff": staff_id}
    return sign(key.encode(), purpose, payload, issued_at + valid_for)


@dataclass(frozen=True)
class RevisitState:
    status: RevisitStatus
    outcome: str | None
    completed_at: datetime | None
    notes: str | None


def revisit_state(engine: Engine, revisit_id: int) -> RevisitState:
    with session_scope(engine) as session:
        revisit = session.get(Revisit, revisit_id)
        assert revisit is not None
        return RevisitState(revisit.status, revisit.outcome, revisit.completed_at, revisit.notes)


def contacts(
    engine: Engine, revisit_id: int
) -> list[tuple[ContactOutcome, int | None, str | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(ContactHistory.outcome, ContactHistory.staff_id, ContactHistory.notes)
            .where(ContactHistory.revisit_id == revisit_id)
            .order_by(ContactHistory.id)
        )
        return [(outcome, staff_id, notes) for outcome, staff_id, notes in rows]


def post(client: TestClient, token: str, body: str | bytes, **headers: str) -> httpx.Response:
    response: httpx.Response = client.post(f"/r/{token}", content=body, headers={**FORM, **headers})
    return response


# --- GET -------------------------------------------------------------------------------------


def test_get_shows_the_revisit_and_changes_nothing(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine, customer_name="王五加油")
    token = outcome_token(row.revisit_id, row.assignee_id, issued_at=NOW - timedelta(days=3))

    for _ in range(3):  # scanners and previews may fetch it several times
        response = client.get(f"/r/{token}")
        assert response.status_code == 200
    assert revisit_state(engine, row.revisit_id).status is RevisitStatus.OPEN
    assert contacts(engine, row.revisit_id) == []

    page = response.text
    assert '<html lang="zh-CN">' in page
    assert "记录回访结果" in page
    facts = re.sub(r"\s+", " ", page.split('<dl class="facts">')[1].split("</dl>")[0])
    assert "<dd>王五加油</dd>" in facts
    assert "<dt>客户等级</dt><dd>B</dd>" in facts
    assert "<dt>回访方式</dt><dd>电话回访</dd>" in facts
    assert "<dt>应回访日期</dt><dd>2026-11-20</dd>" in facts
    assert "<dt>状态</dt><dd>待回访</dd>" in facts
    assert re.findall(r'<input type="radio" name="outcome" value="(\w+)" required>', page) == [
        "completed",
        "issue_raised",
        "no_answer",
        "rescheduled",
    ]
    for label in ("已完成回访", "客户提出问题", "未联系上", "已改约时间"):
        assert label in page
    assert '<textarea id="notes" name="notes" maxlength="2000"' in page
    assert '<form method="post">' in page and "保存结果</button>" in page
    for name, value in {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
        "x-frame-options": "DENY",
    }.items():
        assert response.headers[name] == value


def test_an_open_revisits_notes_say_why_it_was_opened(engine: Engine, client: TestClient) -> None:
    # A care-feedback follow-up carries the customer's "not solved" answer in its notes.
    row = make_revisit(engine, notes="customer feedback: not solved\n余额 <b>不对</b>")
    page = client.get(f"/r/{outcome_token(row.revisit_id, row.assignee_id)}").text
    assert '<p class="muted">回访原因</p>' in page
    assert "customer feedback: not solved\n余额 &lt;b&gt;不对&lt;/b&gt;</p>" in page
    assert '<form method="post">' in page
    without = make_revisit(engine)
    assert (
        "回访原因"
        not in client.get(f"/r/{outcome_token(without.revisit_id, without.assignee_id)}").text
    )


def test_page_speaks_the_staff_members_language(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine, staff_locale="en", channel=ContactChannel.VISIT)
    token = outcome_token(row.revisit_id, row.assignee_id)
    response = client.get(f"/r/{token}", headers={"accept-language": "zh-CN"})
    assert '<html lang="en">' in response.text
    assert "Record the revisit outcome" in response.text
    assert "<dd>Visit</dd>" in response.text
    assert "Customer raised an issue" in response.text


def test_customer_name_with_markup_is_escaped(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine, customer_name='<script>alert("x")</script> & Co')
    response = client.get(f"/r/{outcome_token(row.revisit_id, row.assignee_id)}")
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in response.text


# --- POST ------------------------------------------------------------------------------------


def test_post_completed_closes_the_revisit_as_the_staff_in_the_token(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    row = make_revisit(engine)
    # The branch manager's escalation email carries a link naming them, not the assignee.
    token = outcome_token(row.revisit_id, row.branch_manager_id, issued_at=NOW - timedelta(days=5))

    response = post(client, token, "outcome=completed&notes=%E5%B7%B2%E6%8B%9C%E8%AE%BF&seen=0")

    assert response.status_code == 200
    state = revisit_state(engine, row.revisit_id)
    assert state == RevisitState(RevisitStatus.DONE, "completed", clock.now, "已拜访")
    assert contacts(engine, row.revisit_id) == [
        (ContactOutcome.COMPLETED, row.branch_manager_id, "已拜访")
    ]
    assert "回访结果已保存" in response.text and "本次回访已结束" in response.text
    assert "<dd>已完成</dd>" in response.text
    assert '<p class="notes">已拜访</p>' in response.text

    # Afterwards the link shows the recorded outcome and no form.
    again = client.get(f"/r/{token}")
    assert again.status_code == 200
    assert "此回访已结束" in again.text and "<dd>已完成回访</dd>" in again.text
    assert "<dd>2026-11-23</dd>" in again.text  # recorded on, the customer's local date
    assert "<form" not in again.text and 'type="radio"' not in again.text


@pytest.mark.parametrize("outcome", [ContactOutcome.NO_ANSWER, ContactOutcome.RESCHEDULED])
def test_attempts_are_recorded_and_keep_the_revisit_open(
    engine: Engine, client: TestClient, outcome: ContactOutcome
) -> None:
    row = make_revisit(engine, staff_locale="en")
    token = outcome_token(row.revisit_id, row.assignee_id)

    response = post(client, token, f"outcome={outcome.value}&notes=&seen=0")

    assert response.status_code == 200
    assert revisit_state(engine, row.revisit_id) == RevisitState(
        RevisitStatus.OPEN, None, None, None
    )
    assert contacts(engine, row.revisit_id) == [(outcome, row.assignee_id, None)]
    assert "Attempt saved" in response.text and "the revisit stays open" in response.text
    assert '<a href="">Record another outcome</a>' in response.text
    # The form is offered again, knowing about the attempt.
    page = client.get(f"/r/{token}").text
    assert 'type="radio"' in page and '<input type="hidden" name="seen" value="1">' in page
    assert "1 so far, last: " in page


def test_double_submit_of_a_closing_outcome_records_it_once(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    row = make_revisit(engine, staff_locale="en")
    token = outcome_token(row.revisit_id, row.assignee_id)
    first = post(client, token, "outcome=issue_raised&notes=pump+7+leaks&seen=0")
    first_time = clock.now
    clock.advance(timedelta(minutes=1))
    second = post(client, token, "outcome=issue_raised&notes=pump+7+leaks&seen=0")

    assert first.status_code == second.status_code == 200
    assert contacts(engine, row.revisit_id) == [
        (ContactOutcome.ISSUE_RAISED, row.assignee_id, "pump 7 leaks")
    ]
    assert revisit_state(engine, row.revisit_id).completed_at == first_time
    assert "nothing was recorded twice" not in first.text
    assert "nothing was recorded twice" in second.text
    assert "Outcome saved" in second.text


def test_a_resent_attempt_form_is_recorded_once(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine)
    token = outcome_token(row.revisit_id, row.assignee_id)
    # A double click or a refresh re-sends the very same form (seen=0) ...
    for _ in range(2):
        assert post(client, token, "outcome=no_answer&seen=0").status_code == 200
    assert contacts(engine, row.revisit_id) == [(ContactOutcome.NO_ANSWER, row.assignee_id, None)]
    # ... while a later try, from a freshly opened form, is a new attempt.
    assert post(client, token, "outcome=no_answer&seen=1").status_code == 200
    # A hand-made post without the hidden field is recorded as it comes.
    assert post(client, token, "outcome=rescheduled").status_code == 200
    assert [c[0] for c in contacts(engine, row.revisit_id)] == [
        ContactOutcome.NO_ANSWER,
        ContactOutcome.NO_ANSWER,
        ContactOutcome.RESCHEDULED,
    ]
    assert revisit_state(engine, row.revisit_id).status is RevisitStatus.OPEN


@pytest.mark.parametrize("attempted", ["completed", "no_answer"])
def test_a_revisit_closed_with_another_outcome_answers_409(
    engine: Engine, client: TestClient, attempted: str
) -> None:
    row = make_revisit(engine, staff_locale="en")
    token = outcome_token(row.revisit_id, row.assignee_id)
    assert post(client, token, "outcome=issue_raised&notes=first").status_code == 200

    response = post(client, token, f"outcome={attempted}&notes=second")

    assert response.status_code == 409
    assert "This revisit is already closed" in response.text
    assert "Nothing was changed." in response.text
    assert "<dd>Customer raised an issue</dd>" in response.text
    assert revisit_state(engine, row.revisit_id).notes == "first"
    assert len(contacts(engine, row.revisit_id)) == 1


def test_a_cancelled_revisit_shows_no_form_and_refuses_posts(
    engine: Engine, client: TestClient
) -> None:
    row = make_revisit(engine, staff_locale="en", status=RevisitStatus.CANCELLED)
    token = outcome_token(row.revisit_id, row.assignee_id)
    page = client.get(f"/r/{token}")
    assert page.status_code == 200 and "<form" not in page.text
    assert "This revisit was cancelled" in page.text
    response = post(client, token, "outcome=completed")
    assert response.status_code == 409
    assert contacts(engine, row.revisit_id) == []
    assert revisit_state(engine, row.revisit_id).status is RevisitStatus.CANCELLED


@pytest.mark.parametrize(
    "body",
    [
        "outcome=done",
        "outcome=",
        "notes=hello",
        "",
        "outcome=completed&outcome=no_answer",
        "outcome=COMPLETED",
        "outcome=completed%FF",  # not UTF-8 once decoded
    ],
)
@pytest.mark.parametrize(
    ("locale", "heading", "field"),
    [("en", "Please check the form", "“Outcome”"), ("zh-CN", "请检查表单", "“回访结果”")],
)
def test_an_invalid_outcome_answers_400_naming_the_field(
    engine: Engine, client: TestClient, body: str, locale: str, heading: str, field: str
) -> None:
    row = make_revisit(engine, staff_locale=locale)
    token = outcome_token(row.revisit_id, row.assignee_id)

    response = post(client, token, body)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert f'<html lang="{locale}">' in response.text
    assert heading in response.text and field in response.text
    assert contacts(engine, row.revisit_id) == []
    assert revisit_state(engine, row.revisit_id).status is RevisitStatus.OPEN


def test_notes_longer_than_2000_characters_answer_400(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine, staff_locale="en")
    token = outcome_token(row.revisit_id, row.assignee_id)

    too_long = post(client, token, "outcome=completed&notes=" + "x" * 2001)
    assert too_long.status_code == 400
    assert "The field “Notes” is missing or not valid" in too_long.text
    assert "at most 2000 characters" in too_long.text
    assert contacts(engine, row.revisit_id) == []

    # Browsers send line breaks as CRLF but count them as one character, as we do.
    lines = "%0D%0A".join(["y" * 99] * 20)  # 20 * 99 + 19 = 1999 characters
    accepted = post(client, token, f"outcome=completed&notes={lines}")
    assert accepted.status_code == 200
    stored = revisit_state(engine, row.revisit_id).notes
    assert stored is not None and len(stored) == 1999 and "\r" not in stored


def test_oversized_and_non_form_bodies_are_refused(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine)
    token = outcome_token(row.revisit_id, row.assignee_id)
    huge = "outcome=completed&notes=" + "x" * MAX_BODY_BYTES
    assert post(client, token, huge).status_code == 413

    # A chunked body without Content-Length is capped while it streams in.
    def chunks() -> Iterator[bytes]:
        yield b"outcome=completed&notes="
        for _ in range(20):
            yield b"x" * 1024

    streamed = client.post(f"/r/{token}", content=chunks(), headers=FORM)
    assert streamed.status_code == 413
    multipart = client.post(
        f"/r/{token}",
        content=b'--b\r\nContent-Disposition: form-data; name="outcome"\r\n\r\n'
        b"completed\r\n--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert multipart.status_code == 415
    assert client.post(f"/r/{token}", json={"outcome": "completed"}).status_code == 415
    assert contacts(engine, row.revisit_id) == []
    # Those were the error pages, in HTML, with the security headers.
    assert "<h1>" in multipart.text and multipart.headers["x-frame-options"] == "DENY"


def test_notes_with_markup_are_escaped_on_the_done_page(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine, staff_locale="en")
    token = outcome_token(row.revisit_id, row.assignee_id)
    notes = '<script>alert(1)</script><img src=x onerror="y">'

    done = post(client, token, "outcome=completed&notes=" + notes.replace("&", "%26"))
    shown = client.get(f"/r/{token}")

    assert revisit_state(engine, row.revisit_id).notes == notes  # stored as typed
    for response in (done, shown):
        assert response.status_code == 200
        assert "<script>" not in response.text and "<img" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;y&#34;&gt;" in (
            response.text
        )


# --- bad links -------------------------------------------------------------------------------


def _bad_tokens(engine: Engine) -> dict[str, str]:
    row = make_revisit(engine)
    with session_scope(engine) as session:
        leaver = make_staff(session, StaffRole.ACCOUNT_MANAGER, active=False)
        leaver_id = leaver.id
    good = outcome_token(row.revisit_id, row.assignee_id)
    body, mac = good.split(".")
    forged_body = outcome_token(row.revisit_id + 1000, row.assignee_id).split(".")[0]
    return {
        "unknown revisit": outcome_token(row.revisit_id + 1000, row.assignee_id),
        "unknown staff": outcome_token(row.revisit_id, row.assignee_id + 1000),
        "staff who left": outcome_token(row.revisit_id, leaver_id),
        "expired": outcome_token(
            row.revisit_id, row.assignee_id, issued_at=NOW - timedelta(days=30, seconds=1)
        ),
        "tampered payload": f"{forged_body}.{mac}",
        "tampered mac": f"{body}.{mac[:-2]}AA",
        "other key": outcome_token(row.revisit_id, row.assignee_id, key="not-the-key" * 4),
        "unsubscribe purpose": outcome_token(
            row.revisit_id, row.assignee_id, purpose="unsubscribe"
        ),
        "ids not integers": outcome_token(str(row.revisit_id), True),
        "garbage": "not-a-token",
        "huge": "A" * 5000,
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_links_get_the_unsubscribe_404_page_byte_for_byte(
    engine: Engine, client: TestClient, method: str
) -> None:
    tokens = _bad_tokens(engine)
    headers = {"accept-language": "en", **FORM}
    responses = {
        name: client.request(method, f"/r/{token}", content=b"outcome=completed", headers=headers)
        for name, token in tokens.items()
    }
    reference = client.get("/u/not-a-token", headers=headers)

    assert reference.status_code == 404
    assert b"This link is not valid any more" in reference.content
    for name, response in responses.items():
        assert response.status_code == 404, name
        assert response.content == reference.content, name
        assert sorted(response.headers.items()) == sorted(reference.headers.items()), name
    with session_scope(engine) as session:
        assert session.scalars(select(ContactHistory)).all() == []
        assert session.scalars(select(Revisit.status)).all() == [RevisitStatus.OPEN]


def test_links_built_by_the_mail_renderer_work_for_30_days(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    from tasks.mail.links import revisit_outcome_url

    row = make_revisit(engine)
    url = revisit_outcome_url(
        row.revisit_id,
        staff_id=row.assignee_id,
        key=SIGNING_KEY.encode(),
        base_url="https://crm.example.test",
        now=NOW,
    )
    assert url.startswith("https://crm.example.test/r/")
    assert client.get(url).status_code == 200
    clock.advance(timedelta(days=30))
    assert client.get(url).status_code == 404
    assert client.post(url, content=b"outcome=completed", headers=FORM).status_code == 404
    assert contacts(engine, row.revisit_id) == []
    clock.now = NOW + timedelta(days=29)
    assert client.post(url, content=b"outcome=completed", headers=FORM).status_code == 200
    assert revisit_state(engine, row.revisit_id).completed_at == clock.now


def test_a_staff_member_who_leaves_loses_the_link(engine: Engine, client: TestClient) -> None:
    row = make_revisit(engine)
    token = outcome_token(row.revisit_id, row.assignee_id)
    assert client.get(f"/r/{token}").status_code == 200
    with session_scope(engine) as session:
        session.execute(update(Staff).where(Staff.id == row.assignee_id).values(active=False))
    assert client.get(f"/r/{token}").status_code == 404
    assert post(client, token, "outcome=completed").status_code == 404
    assert contacts(engine, row.revisit_id) == []


# --- concurrency, form parsing, access log ---------------------------------------------------


def test_concurrent_posts_record_one_outcome(engine: Engine) -> None:
    row = make_revisit(engine)
    claims = LinkClaims(row.revisit_id, row.assignee_id)
    form = OutcomeForm(ContactOutcome.COMPLETED, "same time", seen_attempts=0)
    start = threading.Barrier(4)
    results: list[object] = []
    errors: list[BaseException] = []

    def submit() -> None:
        start.wait()
        try:
            results.append(save_outcome(engine, claims, form, NOW))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(results) == 4 and all(isinstance(r, Saved) for r in results)
    assert sorted(r.duplicate for r in results if isinstance(r, Saved)) == [False, True, True, True]
    assert contacts(engine, row.revisit_id) == [
        (ContactOutcome.COMPLETED, row.assignee_id, "same time")
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"outcome=completed", OutcomeForm(ContactOutcome.COMPLETED, None, None)),
        (
            b"outcome=no_answer&notes=+%20hi%0D%0Athere+&seen=3",
            OutcomeForm(ContactOutcome.NO_ANSWER, "hi\nthere", 3),
        ),
        (b"outcome=rescheduled&seen=-1", OutcomeForm(ContactOutcome.RESCHEDULED, None, None)),
        (b"outcome=completed&notes=a%00b", FormError("notes")),
        (b"outcome=completed&notes=a&notes=b", FormError("notes")),
        (b"\xff\xfe", FormError("outcome")),
        (b"&".join([b"x=1"] * 50) + b"&outcome=completed", FormError("outcome")),
    ],
)
def test_parse_outcome_form(body: bytes, expected: OutcomeForm | FormError) -> None:
    assert parse_outcome_form(parse_form_body(body)) == expected


def test_revisit_tokens_stay_out_of_the_access_log() -> None:
    assert redact_path("/r/eyJyZXZpc2l0Ijo0Mn0.mac") == "/r/<token>"
    assert redact_path("/r/eyJy.mac?x=1") == "/r/<token>?x=1"
    assert redact_path("/u/eyJj.abc") == "/u/<token>"
    assert redact_path("/x/r/abc") == "/x/r/abc"
