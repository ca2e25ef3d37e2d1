"""Signed, expiring, purpose-bound tokens for the links in emails (unsubscribe, revisit outcome,
survey answers). HMAC-SHA256 over a compact JSON payload; no server-side state needed to verify.

A token for one purpose never verifies for another, and tampered, expired and unknown tokens are
indistinguishable to the caller (``verify`` returns ``None``), so pages can answer all three alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, body: str) -> str:
    message = f"{purpose}.{body}".encode("utf-8", "surrogatepass")
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def sign(key: bytes, purpose: str, payload: dict[str, Any], expires_at: datetime | None) -> str:
    """Token carrying ``payload`` for ``purpose``; ``expires_at=None`` means it never expires
    (RFC 8058 unsubscribe links must keep working)."""
    claims = dict(payload)
    if expires_at is not None:
        claims["exp"] = int(expires_at.timestamp())
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_mac(key, purpose, body)}"


def verify(
    key: bytes, purpose: str, token: str, now: datetime, *, honour_expiry: bool = True
) -> dict[str, Any] | None:
    """The payload if ``token`` is authentic, for ``purpose``, and not expired at ``now``
    (``honour_expiry=False``: expired is fine too - unsubscribe links issued with an expiry
    before they stopped carrying one must keep working)."""
    body, dot, mac = token.partition(".")
    # Compare bytes: compare_digest refuses non-ASCII str, and a token is untrusted input.
    if not dot or not hmac.compare_digest(
        mac.encode("utf-8", "surrogatepass"), _mac(key, purpose, body).encode()
    ):
        return None
    try:
        claims: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = claims.pop("exp", None)
    if honour_expiry and exp is not None and now.astimezone(UTC).timestamp() >= exp:
        return None
    return claims


def token_hash(token: str) -> str:
    """What the database stores for single-use tokens (a leak of the table leaks no links)."""
    return hashlib.sha256(token.encode()).hexdigest()
