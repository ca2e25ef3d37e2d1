"""``/u/{token}`` against real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from crm_db.models import ConsentChange
from crm_db.session import session_scope
from crm_web.security import CONTENT_SECURITY_POLICY
from tests.crm_web.factories import (
    NOW,
    SIGNING_KEY,
    Clock,
    make_customer,
    unsubscribe_token,
    unsubscribed_at,
)

ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}
EXPECTED_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


def test_csp_is_the_agreed_policy() -> None:
    assert CONTENT_SECURITY_POLICY == (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'"
    )


def test_get_shows_confirmation_and_changes_nothing(engine: Engine, client: TestClient) -> None:
    customer = make_customer(engine, email="zhang.san@example.com")
    token = unsubscribe_token(customer, issued_at=NOW - timedelta(days=3))

    for _ in range(3):  # scanners and previews may fetch it several times
        response = client.get(f"/u/{token}")
        assert response.status_code == 200
    assert unsubscribed_at(engine, customer) is None

    page = response.text
    assert '<html lang="zh-CN">' in page
    assert "确定不再接收我们的邮件吗" in page
    assert re.search(r'<form method="post">\s*<button type="submit">确认退订</button>', page)
    # The address is shown masked, never in full.
    assert "z***@ex***" in page
    assert "zhang.san" not in page and "example.com" not in page
    assert "张三" not in page and "5678" not in page


def test_post_unsubscribes_at_the_clock_time(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    customer = make_customer(engine, locale="en")
    other = make_customer(engine)
    token = unsubscribe_token(customer, issued_at=NOW - timedelta(days=30))

    response = client.post(f"/u/{token}")

    assert response.status_code == 200
    assert unsubscribed_at(engine, customer) == clock.now
    assert unsubscribed_at(engine, other) is None
    assert '<html lang="en">' in response.text
    assert "You are unsubscribed" in response.text
    # 09:30 UTC is 17:30 in Shanghai, same day.
    assert "Unsubscribed on 2026-11-23." in response.text


def test_each_unsubscribe_is_one_audit_row_with_time_and_source(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    customer = make_customer(engine)
    token = unsubscribe_token(customer, issued_at=NOW)
    first = clock.now
    assert client.post(f"/u/{token}").status_code == 200
    clock.advance(timedelta(hours=1))
    assert client.post(f"/u/{token}").status_code == 200  # changes nothing: no second row
    with session_scope(engine) as session:
        rows = [
            (r.customer_id, r.field, r.old_value, r.new_value, r.source, r.changed_at)
            for r in session.scalars(select(ConsentChange))
        ]
    assert rows == [(customer, "unsubscribed", "false", "true", "unsubscribe_link", first)]


def test_second_post_keeps_the_first_timestamp(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    customer = make_customer(engine)
    token = unsubscribe_token(customer, issued_at=NOW)
    first = client.post(f"/u/{token}")
    first_time = clock.now

    clock.advance(timedelta(days=2))
    second = client.post(f"/u/{token}")
    again = client.get(f"/u/{token}")

    assert first.status_code == second.status_code == again.status_code == 200
    assert unsubscribed_at(engine, customer) == first_time
    # After unsubscribing, the link shows the done page with the original date; its only form
    # is "subscribe again" (posting to its own path), no second unsubscribe button.
    assert "您已成功退订" in again.text and "退订日期：2026-11-23。" in again.text
    assert re.findall(r"<form[^>]*>", again.text) == [
        f'<form method="post" action="{token}/resubscribe">'
    ]
    assert "确认退订" not in again.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"),
        (
            "multipart/form-data; boundary=b0undary",
            b'--b0undary\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--b0undary--\r\n",
        ),
    ],
)
def test_rfc8058_one_click_post(
    engine: Engine, client: TestClient, content_type: str, body: bytes
) -> None:
    customer = make_customer(engine)
    token = unsubscribe_token(customer, issued_at=NOW)

    # What a mail provider sends (RFC 8058 allows either encoding): no cookies, no CSRF token.
    response = client.post(f"/u/{token}", content=body, headers={"content-type": content_type})

    assert response.status_code == 200
    assert unsubscribed_at(engine, customer) == NOW


def test_already_unsubscribed_customer_keeps_the_old_date(
    engine: Engine, client: TestClient
) -> None:
    earlier = NOW - timedelta(days=100)
    customer = make_customer(engine, unsubscribed_at=earlier)
    token = unsubscribe_token(customer, issued_at=NOW - timedelta(days=1))

    response = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)

    assert response.status_code == 200
    assert unsubscribed_at(engine, customer) == earlier


def _bad_tokens(engine: Engine) -> dict[str, str]:
    existing = make_customer(engine)
    missing = existing + 1000
    good = unsubscribe_token(existing, issued_at=NOW)
    body, mac = good.split(".")
    forged_body = unsubscribe_token(missing, issued_at=NOW).split(".")[0]
    return {
        "unknown customer": unsubscribe_token(missing, issued_at=NOW),
        "tampered payload": f"{forged_body}.{mac}",
        "tampered mac": f"{body}.{mac[:-2]}AA",
        "other key": unsubscribe_token(existing, issued_at=NOW, key="not-the-key" * 4),
        "other purpose": unsubscribe_token(existing, issued_at=NOW, purpose="survey"),
        "not a customer id": unsubscribe_token("1", issued_at=NOW),
        "garbage": "not-a-token",
        "huge": "A" * 5000,
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_links_get_one_identical_answer(
    engine: Engine, client: TestClient, method: str
) -> None:
    tokens = _bad_tokens(engine)
    responses = {
        name: client.request(method, f"/u/{token}", headers={"accept-language": "en"})
        for name, token in tokens.items()
    }

    bodies = {name: response.content for name, response in responses.items()}
    reference = bodies["unknown customer"]
    assert all(body == reference for body in bodies.values()), sorted(bodies)
    assert {response.status_code for response in responses.values()} == {404}
    header_sets = {
        name: sorted((k, v) for k, v in response.headers.items())
        for name, response in responses.items()
    }
    assert all(h == header_sets["unknown customer"] for h in header_sets.values())
    assert b"This link is not valid any more" in reference
    # Nothing in the message hints at expiry or at whether the customer exists.
    message = reference.split(b"<main>")[1].split(b"</main>")[0].lower()
    assert b"expired" not in message and b"customer" not in message
    # And no bad link changed anything.
    assert unsubscribed_at(engine, 1) is None


def test_invalid_page_follows_accept_language(engine: Engine, client: TestClient) -> None:
    token = unsubscribe_token(999_999, issued_at=NOW)
    chinese = client.get(f"/u/{token}", headers={"accept-language": "zh-TW,zh;q=0.9,en;q=0.8"})
    english = client.get(f"/u/{token}", headers={"accept-language": "en-GB,en;q=0.9"})
    default = client.get(f"/u/{token}")
    assert "此链接已失效" in chinese.text
    assert "This link is not valid any more" in english.text
    assert default.content == chinese.content  # the deployment default is zh-CN


def test_customer_locale_beats_accept_language(engine: Engine, client: TestClient) -> None:
    customer = make_customer(engine, locale="en")
    token = unsubscribe_token(customer, issued_at=NOW)
    response = client.get(f"/u/{token}", headers={"accept-language": "zh-CN"})
    assert "Stop our emails?" in response.text


def test_customer_without_email_still_gets_a_page(engine: Engine, client: TestClient) -> None:
    customer = make_customer(engine, email=None)
    token = unsubscribe_token(customer, issued_at=NOW)
    response = client.get(f"/u/{token}")
    assert response.status_code == 200
    assert "我们将停止向 此邮箱 发送邮件" in response.text


def test_markup_in_stored_data_is_escaped(engine: Engine, client: TestClient) -> None:
    customer = make_customer(engine, email="<script>@x.test")
    token = unsubscribe_token(customer, issued_at=NOW)
    response = client.get(f"/u/{token}")
    assert "<script>" not in response.text
    assert "&lt;***@x.***" in response.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/u/{token}", 200),
        ("POST", "/u/{token}", 200),
        ("GET", "/u/not-a-token", 404),
        ("GET", "/nowhere", 404),
        ("PUT", "/u/{token}", 405),
        ("GET", "/healthz", 200),
    ],
)
def test_security_headers_on_every_response(
    engine: Engine, client: TestClient, method: str, path: str, status: int
) -> None:
    token = unsubscribe_token(make_customer(engine), issued_at=NOW)
    response = client.request(method, path.format(token=token))
    assert response.status_code == status
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, name


def test_error_pages_are_html_not_json(engine: Engine, client: TestClient) -> None:
    response = client.get("/nowhere", headers={"accept-language": "en"})
    assert response.headers["content-type"].startswith("text/html")
    assert "Page not found" in response.text
    not_allowed = client.put("/u/whatever", headers={"accept-language": "en"})
    assert not_allowed.status_code == 405
    assert "Something went wrong" in not_allowed.text
    # The handler keeps the routing's Allow header (Starlette names the first matching route's).
    assert "GET" in not_allowed.headers["allow"]


def test_no_api_docs_exposed(engine: Engine, client: TestClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


def test_links_built_by_the_mail_renderer_work_here(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    # The contract with tasks/mail/links.py: its URL is {public_base_url}/u/{token}.
    from tasks.mail.links import unsubscribe_url

    customer = make_customer(engine)
    url = unsubscribe_url(
        customer, key=SIGNING_KEY.encode(), base_url="https://crm.example.test", now=NOW
    )
    assert url.startswith("https://crm.example.test/u/")

    assert client.get(url).status_code == 200
    clock.advance(timedelta(days=3650))  # unsubscribe links never expire (RFC 8058)
    assert client.post(url).status_code == 200
    assert unsubscribed_at(engine, customer) == clock.now


def test_links_issued_with_an_expiry_still_unsubscribe_after_it(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    customer = make_customer(engine)
    old = unsubscribe_token(
        customer, issued_at=NOW - timedelta(days=401), valid_for=timedelta(days=400)
    )
    assert client.post(f"/u/{old}").status_code == 200
    assert unsubscribed_at(engine, customer) == clock.now


# --- re-subscribing by the customer's own action ----------------------------------------------


def consent_rows(engine: Engine, customer_id: int) -> list[tuple[str, str | None, str, object]]:
    with session_scope(engine) as session:
        return [
            (r.field, r.new_value, r.source, r.changed_at)
            for r in session.scalars(
                select(ConsentChange)
                .where(ConsentChange.customer_id == customer_id)
                .order_by(ConsentChange.id)
            )
        ]


def test_resubscribe_clears_the_opt_out_and_audits_it_once(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    customer = make_customer(engine)
    token = unsubscribe_token(customer, issued_at=NOW)
    unsubscribed_on = clock.now
    assert client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    clock.advance(timedelta(days=3))
    resubscribed_on = clock.now

    first = client.post(f"/u/{token}/resubscribe")
    clock.advance(timedelta(minutes=1))
    second = client.post(f"/u/{token}/resubscribe")  # a double click changes nothing more

    assert first.status_code == second.status_code == 200
    assert "您已重新订阅" in first.text and "z***@ex***" in first.text
    assert unsubscribed_at(engine, customer) is None
    assert consent_rows(engine, customer) == [
        ("unsubscribed", "true", "unsubscribe_link", unsubscribed_on),
        ("unsubscribed", "false", "resubscribe_link", resubscribed_on),
    ]
    # The page offers to unsubscribe again, at the unsubscribe link itself.
    assert re.findall(r"<form[^>]*>", first.text) == [f'<form method="post" action="../{token}">']


def test_one_click_still_unsubscribes_after_a_resubscribe(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    customer = make_customer(engine)
    token = unsubscribe_token(customer, issued_at=NOW)
    client.post(f"/u/{token}")
    clock.advance(timedelta(days=1))
    client.post(f"/u/{token}/resubscribe")
    clock.advance(timedelta(days=1))
    again = clock.now

    response = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)

    assert response.status_code == 200 and "您已成功退订" in response.text
    assert unsubscribed_at(engine, customer) == again
    assert [row[1:3] for row in consent_rows(engine, customer)] == [
        ("true", "unsubscribe_link"),
        ("false", "resubscribe_link"),
        ("true", "unsubscribe_link"),
    ]


def test_resubscribe_needs_a_post_and_a_good_token(engine: Engine, client: TestClient) -> None:
    customer = make_customer(engine, unsubscribed_at=NOW - timedelta(days=5))
    token = unsubscribe_token(customer, issued_at=NOW)

    fetched = client.get(f"/u/{token}/resubscribe")  # a link preview or scanner
    tampered = client.post(f"/u/{token[:-2]}xx/resubscribe")
    other_purpose = client.post(
        f"/u/{unsubscribe_token(customer, issued_at=NOW, purpose='revisit_outcome')}/resubscribe"
    )
    unknown = client.post(f"/u/{unsubscribe_token(10**9, issued_at=NOW)}/resubscribe")

    assert fetched.status_code == 405
    assert tampered.status_code == other_purpose.status_code == unknown.status_code == 404
    assert unsubscribed_at(engine, customer) == NOW - timedelta(days=5)
    assert consent_rows(engine, customer) == []


def test_resubscribing_a_subscribed_customer_writes_nothing(
    engine: Engine, client: TestClient
) -> None:
    customer = make_customer(engine)
    response = client.post(f"/u/{unsubscribe_token(customer, issued_at=NOW)}/resubscribe")
    assert response.status_code == 200
    assert unsubscribed_at(engine, customer) is None and consent_rows(engine, customer) == []
