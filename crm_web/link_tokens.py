"""Reading the signed tokens in our links: one place for the checks every page makes.

A token is trusted only when ``crm_core.signing.verify`` accepts it for the page's purpose and it
has not expired; the ids it names must be positive integers. Absurdly long tokens are refused
before an HMAC is spent on them (ours are ~100 characters).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_core.signing import verify

MAX_TOKEN_LENGTH = 512


def token_claims(
    key: bytes, purpose: str, token: str, now: datetime, *, honour_expiry: bool = True
) -> dict[str, Any] | None:
    """The claims of an authentic, unexpired ``purpose`` token, else ``None``."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    return verify(key, purpose, token, now, honour_expiry=honour_expiry)


def positive_id(value: object) -> int | None:
    """``value`` if it is a positive integer id (a signed ``true`` is not: bool is an int)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def claimed_id(
    key: bytes,
    purpose: str,
    token: str,
    now: datetime,
    claim: str,
    *,
    honour_expiry: bool = True,
) -> int | None:
    """The id under ``claim`` in an authentic, unexpired ``purpose`` token, else ``None``."""
    claims = token_claims(key, purpose, token, now, honour_expiry=honour_expiry)
    return None if claims is None else positive_id(claims.get(claim))
