"""Links in emails: signed unsubscribe/outcome URLs and the https-or-our-base gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_core.signing import verify
from tasks.mail.links import (
    UnsafeURL,
    care_feedback_url,
    revisit_outcome_url,
    safe_url,
    signed_url,
    unsubscribe_url,
)

KEY = b"k" * 32
BASE = "http://127.0.0.1:8000"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _token(url: str, prefix: str, base: str = BASE) -> str:
    assert url.startswith(f"{base}/{prefix}/")
    return url.removeprefix(f"{base}/{prefix}/")


def test_unsubscribe_url_is_signed_for_the_customer_and_never_expires() -> None:
    url = unsubscribe_url(42, key=KEY, base_url=BASE, now=NOW)
    token = _token(url, "u")
    assert verify(KEY, "unsubscribe", token, NOW + timedelta(days=399)) == {"customer": 42}
    assert verify(KEY, "unsubscribe", token, NOW + timedelta(days=36500)) == {"customer": 42}
    assert verify(KEY, "revisit_outcome", token, NOW) is None  # purpose-bound
    assert verify(b"x" * 32, "unsubscribe", token, NOW) is None  # key-bound


def test_unsubscribe_url_tolerates_a_trailing_slash_on_the_base() -> None:
    url = unsubscribe_url(7, key=KEY, base_url="https://crm.example.test/", now=NOW)
    assert url.startswith("https://crm.example.test/u/")
    assert "//u/" not in url


def test_revisit_outcome_url_names_revisit_and_staff() -> None:
    url = revisit_outcome_url(9, staff_id=3, key=KEY, base_url=BASE, now=NOW)
    claims = verify(KEY, "revisit_outcome", _token(url, "r"), NOW + timedelta(days=29))
    assert claims == {"revisit": 9, "staff": 3}
    assert verify(KEY, "revisit_outcome", _token(url, "r"), NOW + timedelta(days=31)) is None


def test_care_feedback_url_names_the_email_and_expires_after_30_days() -> None:
    url = care_feedback_url(812, key=KEY, base_url=BASE, now=NOW)
    token = _token(url, "f")
    assert verify(KEY, "care_feedback", token, NOW + timedelta(days=29)) == {"message": 812}
    assert verify(KEY, "care_feedback", token, NOW + timedelta(days=31)) is None
    assert verify(KEY, "unsubscribe", token, NOW) is None  # purpose-bound


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.test/u/abc.def",
        "HTTPS://crm.example.test/x?a=1&b=2",
        "https://例え.jp/path",
        "http://127.0.0.1:8000/u/token",
        "http://127.0.0.1:8000",
    ],
)
def test_safe_url_accepts_https_and_our_base(url: str) -> None:
    assert safe_url(url, BASE) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "http://evil.test/u/x",
        "http://127.0.0.1:8000.evil.test/u/x",  # prefix trick
        "http://127.0.0.1:80001/u/x",
        "http://127.0.0.1:8000@evil.test/",  # user info trick
        "https://crm.example.test@evil.test/",
        "//evil.test/x",
        "/relative/path",
        "https://",
        'https://x.test/" onmouseover="alert(1)',
        "https://x.test/'onmouseover='alert(1)",
        "https://x.test/<script>",
        "https://x.test/a b",
        "https://x.test/a\r\nBcc: x@evil.test",
        "https://x.test/\\evil",
        "",
    ],
)
def test_safe_url_rejects_everything_else(url: str) -> None:
    with pytest.raises(UnsafeURL) as err:
        safe_url(url, BASE)
    assert url not in str(err.value) or url == ""  # never echoes a (possibly token-bearing) URL


def test_safe_url_rejects_non_text() -> None:
    with pytest.raises(UnsafeURL):
        safe_url(None, BASE)  # type: ignore[arg-type]


def test_signed_url_refuses_a_token_that_would_break_out() -> None:
    with pytest.raises(UnsafeURL):
        signed_url(BASE, "u", 'abc" onclick="x')


@given(st.text(max_size=80))
def test_safe_url_output_is_always_an_inert_link(text: str) -> None:
    for candidate in (text, "https://x.test/" + text, BASE + "/u/" + text, "javascript:" + text):
        try:
            url = safe_url(candidate, BASE)
        except UnsafeURL:
            continue
        assert url.lower().startswith("https://") or url.startswith(BASE)
        assert not any(ch in url for ch in "\"'<> \r\n\t\\`")


@given(st.text(max_size=40), st.sampled_from([BASE, BASE + "/", "https://crm.example.test/app"]))
def test_signed_url_output_always_passes_the_gate(token: str, base: str) -> None:
    try:
        url = signed_url(base, "r", token)
    except UnsafeURL:
        return
    assert safe_url(url, base) == url


@pytest.mark.parametrize("base", ["javascript:alert(1)", "http://user@evil.test", "http://"])
def test_signed_url_refuses_a_bad_base(base: str) -> None:
    with pytest.raises(UnsafeURL):
        signed_url(base, "u", "abc.def")
