from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_core.signing import sign
from crm_web.link_tokens import MAX_TOKEN_LENGTH, claimed_id, positive_id, token_claims

KEY = b"k" * 32
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def _token(payload: dict[str, object], purpose: str = "p", valid_for: int = 1) -> str:
    return sign(KEY, purpose, payload, NOW + timedelta(days=valid_for))


def test_claimed_id_reads_a_positive_integer_from_an_authentic_unexpired_token() -> None:
    assert claimed_id(KEY, "p", _token({"message": 7}), NOW, "message") == 7
    assert claimed_id(KEY, "p", _token({"message": 7}, valid_for=-1), NOW, "message") is None
    assert claimed_id(KEY, "q", _token({"message": 7}), NOW, "message") is None
    assert claimed_id(KEY, "p", _token({"other": 7}), NOW, "message") is None


def test_only_positive_integers_are_ids() -> None:
    assert positive_id(3) == 3
    for value in (0, -3, True, "3", 3.0, None):
        assert positive_id(value) is None, value


def test_absurdly_long_tokens_are_refused_before_verifying() -> None:
    token = _token({"message": 7})
    padded = token + "A" * (MAX_TOKEN_LENGTH + 1 - len(token))
    assert token_claims(KEY, "p", token, NOW) == {"message": 7}
    assert token_claims(KEY, "p", padded, NOW) is None
