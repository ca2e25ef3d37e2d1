from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from crm_core.masking import mask_email, mask_phone, mask_text
from crm_core.signing import sign, verify

KEY = b"k" * 32
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_round_trip_and_expiry() -> None:
    token = sign(KEY, "unsubscribe", {"c": 42}, NOW + timedelta(days=1))
    assert verify(KEY, "unsubscribe", token, NOW) == {"c": 42}
    assert verify(KEY, "unsubscribe", token, NOW + timedelta(days=1)) is None


def test_wrong_purpose_key_or_tampering_fails() -> None:
    token = sign(KEY, "unsubscribe", {"c": 42}, None)
    assert verify(KEY, "revisit", token, NOW) is None
    assert verify(b"x" * 32, "unsubscribe", token, NOW) is None
    body, mac = token.split(".")
    forged = sign(b"x" * 32, "unsubscribe", {"c": 43}, None).split(".")[0]
    assert verify(KEY, "unsubscribe", f"{forged}.{mac}", NOW) is None
    assert verify(KEY, "unsubscribe", "garbage", NOW) is None
    assert verify(KEY, "unsubscribe", ".\x80", NOW) is None  # found by hypothesis
    assert verify(KEY, "unsubscribe", "\ud800.\udfff", NOW) is None


@given(st.text())
def test_arbitrary_tokens_never_verify_or_crash(token: str) -> None:
    assert verify(KEY, "unsubscribe", token, NOW) is None


def test_masking() -> None:
    assert mask_email("zhang.san@example.com") == "z***@ex***"
    assert mask_phone("138-1234-5678") == "*******5678"
    masked = mask_text("550 5.1.1 <li.si@corp.example> unknown; call 13812345678")
    assert "li.si" not in masked and "13812345678" not in masked and "5678" in masked
