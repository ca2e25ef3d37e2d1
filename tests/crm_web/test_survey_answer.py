"""``/s/{token}``, the survey answer page, against real SQLite files and real PostgreSQL: GET and
HEAD preselect and write nothing, POST records once, every bad link gets one answer, typed text
comes back escaped, and the per-client brake fires."""

from __future__ import annotations

import asyncio
import base64
import random
import re
from datetime import timedelta
from urllib.parse import urlencode

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from crm_core.signing import sign
from crm_db.enums import InvitationStatus, ResponseSource, SurveyKind
from crm_db.models import SurveyResponse
from crm_db.session import session_scope
from crm_web.app import create_app
from tasks.mail.links import survey_answer_url
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.tasks.surveys.answer_factories import (
    KEY,
    invitation_status,
    make_invitation,
    responses,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}


def post(client: TestClient, token: str, fields: dict[str, str], **headers: str) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/s/{token}", content=urlencode(fields), headers={**FORM, **headers}
    )
    return response


def checked(html: str, name: str) -> list[str]:
    """The values of the checked radio buttons named ``name``."""
    return re.findall(rf'name="{name}" value="(\d+)"[^>]*\bchecked\b', html)


def offered(html: str, name: str) -> list[int]:
    return [int(v) for v in re.findall(rf'name="{name}" value="(\d+)"', html)]


def test_one_click_link_preselects_and_writes_nothing(engine: Engine, client: TestClient) -> None:
    row = make_invitation(engine, now=NOW)
    url = survey_answer_url(
        row.invitation_id,
        key=KEY,
        base_url="https://crm.example.test",
        expires_at=row.expires_at,
        score=9,
    )
    page = client.get(url)
    assert page.status_code == 200
    assert "您有多大可能向朋友或同事推荐我们？" in page.text
    assert offered(page.text, "score") == list(range(11))
    assert checked(page.text, "score") == ["9"]
    assert offered(page.text, "product_rating") == [1, 2, 3, 4, 5]
    assert checked(page.text, "product_rating") == checked(page.text, "service_rating") == []
    assert 'name="suggestion"' in page.text and '<form method="post">' in page.text
    head = client.head(url)  # a mail scanner
    assert head.status_code == 200
    # A score the kind does not offer just opens the page without a choice.
    assert checked(client.get(f"/s/{row.token}?score=11").text, "score") == []
    assert responses(engine) == 0
    assert invitation_status(engine, row.invitation_id) is InvitationStatus.SENT


def test_post_records_and_a_repeat_shows_the_same_thanks(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    row = make_invitation(engine, now=NOW, kind=SurveyKind.CSAT, locale="en")
    page = client.get(f"/s/{row.token}?score=4")
    assert "How satisfied are you" in page.text
    assert offered(page.text, "score") == [1, 2, 3, 4, 5]
    fields = {
        "score": "4",
        "product_rating": "5",
        "service_rating": "",
        "suggestion": "Faster refunds, please",
    }
    thanks = post(client, row.token, fields)
    assert thanks.status_code == 200
    assert "Thank you for your answer" in thanks.text and "4 / 5" in thanks.text
    assert "Faster refunds, please" in thanks.text
    with session_scope(engine) as session:
        stored = session.scalars(select(SurveyResponse)).one()
        assert (stored.score, stored.product_rating, stored.service_rating) == (4, 5, None)
        assert stored.source is ResponseSource.WEB and stored.responded_at == NOW
    assert invitation_status(engine, row.invitation_id) is InvitationStatus.RESPONDED
    clock.advance(timedelta(hours=2))
    again = post(client, row.token, fields)
    assert (again.status_code, again.text) == (thanks.status_code, thanks.text)
    # A different answer to the used link, and the used link opened again: the invalid page.
    invalid = client.get("/s/not-a-token")
    changed = post(client, row.token, {**fields, "score": "1"})
    reopened = client.get(f"/s/{row.token}?score=4")
    for response in (changed, reopened):
        assert (response.status_code, response.text) == (invalid.status_code, invalid.text)
    assert responses(engine) == 1


def test_bad_form_shows_the_form_again_and_records_nothing(
    engine: Engine, client: TestClient
) -> None:
    row = make_invitation(engine, now=NOW)
    typed = "<script>alert(1)</script> 太慢"
    response = post(client, row.token, {"score": "", "product_rating": "7", "suggestion": typed})
    assert response.status_code == 400
    assert "请先选择一个分数。" in response.text and "评分请选择 1 到 5 分" in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 太慢" in response.text
    # The longest suggestion in Chinese (18 KB once percent-encoded) is read and judged by the
    # form's rule, not refused for its size; one character more is the form's error.
    longest = post(client, row.token, {"score": "10", "suggestion": "太" * 2001})
    assert longest.status_code == 400 and "建议最多 2000 个字符。" in longest.text
    long = post(client, row.token, {"score": "10", "suggestion": "a" * 2001})
    assert long.status_code == 400 and "建议最多 2000 个字符。" in long.text
    assert checked(long.text, "score") == ["10"]  # the valid choice is kept
    twice = client.post(
        f"/s/{row.token}", content="score=10&suggestion=a&suggestion=b", headers=FORM
    )
    assert twice.status_code == 400 and responses(engine) == 0
    assert post(client, row.token, {"score": "10", "score_": "x"}).status_code == 200
    assert responses(engine) == 1


def _bad_tokens(engine: Engine) -> dict[str, str]:
    sent = make_invitation(engine, now=NOW)
    pending = make_invitation(engine, now=NOW, status=InvitationStatus.PENDING)
    expired = make_invitation(engine, now=NOW, status=InvitationStatus.EXPIRED)
    used = make_invitation(engine, now=NOW, status=InvitationStatus.RESPONDED)
    past = make_invitation(engine, now=NOW, valid_for=timedelta(seconds=-1))
    body, _, mac = sent.token.partition(".")
    return {
        "unknown invitation": sign(KEY, "survey_answer", {"invitation": 987_654}, sent.expires_at),
        "tampered": body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac,
        "other purpose": sign(KEY, "care_feedback", {"invitation": sent.invitation_id}, None),
        "other key": sign(b"x" * 32, "survey_answer", {"invitation": sent.invitation_id}, None),
        "not an id": sign(KEY, "survey_answer", {"invitation": True}, sent.expires_at),
        "expired token": past.token,
        "pending": pending.token,
        "expired invitation": expired.token,
        "used": used.token,
        "garbage": "x" * 600,
    }


def test_every_bad_link_gets_one_identical_answer(engine: Engine, client: TestClient) -> None:
    answers = set()
    for name, token in _bad_tokens(engine).items():
        for response in (
            client.get(f"/s/{token}?score=9"),
            post(client, token, {"score": "9"}),
        ):
            assert response.status_code == 404, name
            answers.add(response.text)
    assert len(answers) == 1
    assert responses(engine) == 0


def test_bad_link_page_follows_accept_language(engine: Engine, client: TestClient) -> None:
    zh = client.get("/s/nope")
    en = client.get("/s/nope", headers={"accept-language": "en-GB,en;q=0.9"})
    assert zh.status_code == en.status_code == 404
    assert "此链接已失效" in zh.text and "此链接已失效" not in en.text


def test_stored_markup_is_escaped_on_the_thanks_page(engine: Engine, client: TestClient) -> None:
    row = make_invitation(engine, now=NOW)
    hostile = '"><img src=x onerror=alert(1)><script>alert("x")</script>'
    response = post(client, row.token, {"score": "3", "suggestion": hostile})
    assert response.status_code == 200
    assert "<script>" not in response.text and "<img" not in response.text
    assert "&lt;script&gt;" in response.text and "&#34;&gt;&lt;img" in response.text
    with session_scope(engine) as session:
        assert session.scalars(select(SurveyResponse.comment)).one() == hostile


def test_random_tokens_record_nothing_and_the_brake_fires(sqlite_engine: Engine) -> None:
    """10,000 random and forged tokens, from one client, against the page without a brake:
    all refused, nothing written; then with the brake: the client is stopped after 20 refused
    links, while another client's good link still works."""
    rng = random.Random(17)
    row = make_invitation(sqlite_engine, now=NOW)

    def random_token(i: int) -> str:
        if i % 10 == 0:  # forged: the right shape, a guessed key, a real invitation id
            return sign(rng.randbytes(32), "survey_answer", {"invitation": row.invitation_id}, None)
        # Random base64url text, sometimes shaped like ours (body.mac).
        text = base64.urlsafe_b64encode(rng.randbytes(rng.randint(8, 90))).decode().rstrip("=")
        return text if i % 2 else f"{text[:40]}.{text[40:]}x"

    app = create_app(sqlite_engine, web_settings(), clock=Clock(NOW))
    app.state.survey_answer_limiter.failures = 10**9
    app.state.survey_answer_limiter.requests = 10**9
    tokens = [random_token(i) for i in range(10_000)]

    async def guess_all() -> dict[int, int]:
        # One event loop, no test-client thread hop per request: 10,000 posts in seconds.
        counts: dict[int, int] = {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://crm.example.test"
        ) as guesser:
            for token in tokens:
                response = await guesser.post(f"/s/{token}", content="score=10", headers=FORM)
                counts[response.status_code] = counts.get(response.status_code, 0) + 1
        return counts

    statuses = asyncio.run(guess_all())
    assert statuses == {404: 10_000}
    assert responses(sqlite_engine) == 0

    braked = create_app(sqlite_engine, web_settings(), clock=Clock(NOW))
    with TestClient(braked, base_url="https://crm.example.test") as guesser:
        codes = [
            guesser.post(f"/s/{random_token(i)}", content="score=10", headers=FORM).status_code
            for i in range(100)
        ]
        assert codes[:20] == [404] * 20
        assert codes[20:] == [429] * 80
        # Stopped for every link now, a good one included, with the wait to honour.
        stopped = guesser.get(f"/s/{row.token}")
        assert stopped.status_code == 429 and int(stopped.headers["retry-after"]) > 0
        assert "请求过于频繁" in stopped.text
    with TestClient(
        braked, base_url="https://crm.example.test", client=("203.0.113.9", 50000)
    ) as customer:
        assert post(customer, row.token, {"score": "10"}).status_code == 200
    assert responses(sqlite_engine) == 1
    assert braked.state.survey_answer_limiter.refused == 81


def test_request_budget_per_client(sqlite_engine: Engine) -> None:
    app = create_app(
        sqlite_engine, web_settings(web_answer_requests_per_minute=5), clock=Clock(NOW)
    )
    row = make_invitation(sqlite_engine, now=NOW)
    with TestClient(app, base_url="https://crm.example.test") as client:
        codes = [client.get(f"/s/{row.token}?score=8").status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    assert responses(sqlite_engine) == 0
