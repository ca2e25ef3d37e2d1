"""Every URL that goes into an email is built here, from ids and signed tokens, never from text a
customer typed. ``safe_url`` is the gate the templates apply again at render time: only https://
links or links under our own public base URL get through, so neither a ``javascript:`` URL nor an
attribute break-out (quotes, spaces, angle brackets) can reach the HTML.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from crm_core.signing import sign

UNSUBSCRIBE_PURPOSE = "unsubscribe"
REVISIT_OUTCOME_PURPOSE = "revisit_outcome"
CARE_FEEDBACK_PURPOSE = "care_feedback"
REVISIT_LIST_PURPOSE = "revisit_list"
SURVEY_ANSWER_PURPOSE = "survey_answer"
WEEKLY_FORM_PURPOSE = "weekly_form"
REVISIT_OUTCOME_TTL = timedelta(days=30)
# A care email is answered within days or not at all; after a month the answer would be stale.
CARE_FEEDBACK_TTL = timedelta(days=30)

# Whitespace, controls, quotes, angle brackets and backslashes never belong in a URL we emit;
# rejecting them (instead of escaping) keeps the rule simple enough to be obviously right.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\"'<>\\`\u2028\u2029]")


class UnsafeURL(ValueError):
    """A URL that is neither https:// nor under the configured public base URL."""


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def safe_url(url: str, base_url: str) -> str:
    """``url`` unchanged if it is https:// (with a host, no user info) or under ``base_url``;
    otherwise ``UnsafeURL``. The message never echoes the URL (it may hold a token)."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("link is empty or not text")
    if _FORBIDDEN.search(url):
        raise UnsafeURL("link contains whitespace, quotes, brackets or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeURL("link is not a valid URL") from exc
    if not parts.hostname or "@" in parts.netloc:
        raise UnsafeURL("link has no host or carries user info")
    if parts.scheme.lower() == "https":
        return url
    base = _base(base_url)
    base_parts = urlsplit(base)
    under_base = (
        parts.scheme.lower() == base_parts.scheme.lower()
        and parts.netloc.lower() == base_parts.netloc.lower()
        and (url == base or url.startswith(base + "/"))
    )
    if not under_base:
        raise UnsafeURL("link must be https:// or under the public base URL")
    return url


# What ``crm_core.signing`` tokens and our path prefixes are made of (base64url and dots).
_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")


def signed_url(base_url: str, prefix: str, token: str) -> str:
    """``{base_url}/{prefix}/{token}``. The base is checked with ``safe_url`` (once per base,
    then remembered); prefix and token may only hold URL-safe token characters, so the joined
    URL passes ``safe_url`` too - without parsing each of the ten thousand links a digest run
    makes."""
    if not (_TOKEN.fullmatch(prefix) and _TOKEN.fullmatch(token)):
        raise UnsafeURL("link path holds characters a signed token never has")
    return f"{_checked_base(base_url)}/{prefix}/{token}"


@lru_cache(maxsize=16)
def _checked_base(base_url: str) -> str:
    base = _base(base_url)
    return safe_url(base + "/", base_url).rstrip("/")


def unsubscribe_url(customer_id: int, *, key: bytes, base_url: str, now: datetime) -> str:
    """The link (and ``List-Unsubscribe`` target) that unsubscribes one customer."""
    token = sign(
        # No expiry: withdrawing consent must stay easy however old the email (RFC 8058).
        key,
        UNSUBSCRIBE_PURPOSE,
        {"customer": customer_id},
        expires_at=None,
    )
    return signed_url(base_url, "u", token)


def revisit_outcome_url(
    revisit_id: int,
    *,
    staff_id: int,
    key: bytes,
    base_url: str,
    now: datetime,
    ttl: timedelta = REVISIT_OUTCOME_TTL,
) -> str:
    """The link in a digest where the account manager records a revisit's outcome
    (``{base_url}/r/{token}``; the token names the revisit and the staff member it was sent to)."""
    token = revisit_outcome_token(revisit_id, staff_id=staff_id, key=key, now=now, ttl=ttl)
    return signed_url(base_url, "r", token)


def revisit_outcome_token(
    revisit_id: int,
    *,
    staff_id: int,
    key: bytes,
    now: datetime,
    ttl: timedelta = REVISIT_OUTCOME_TTL,
) -> str:
    """The token of ``revisit_outcome_url`` (the ``/m/`` page links it relatively, ``../r/``)."""
    return sign(
        key,
        REVISIT_OUTCOME_PURPOSE,
        {"revisit": revisit_id, "staff": staff_id},
        expires_at=now + ttl,
    )


def revisit_list_url(
    staff_id: int,
    *,
    key: bytes,
    base_url: str,
    now: datetime,
    ttl: timedelta = REVISIT_OUTCOME_TTL,
) -> str:
    """The link in a digest to the manager's full list of open revisits (``{base_url}/m/{token}``;
    the token names the staff member the digest was sent to, and lasts as the outcome links do)."""
    token = sign(key, REVISIT_LIST_PURPOSE, {"staff": staff_id}, expires_at=now + ttl)
    return signed_url(base_url, "m", token)


def care_feedback_url(
    outbox_id: int,
    *,
    key: bytes,
    base_url: str,
    now: datetime,
    ttl: timedelta = CARE_FEEDBACK_TTL,
) -> str:
    """The link in a care email where the customer answers "was the issue solved?"
    (``{base_url}/f/{token}``; the token names the email's outbox row, so each email is answered
    once and the answer finds its customer there)."""
    token = sign(key, CARE_FEEDBACK_PURPOSE, {"message": outbox_id}, expires_at=now + ttl)
    return signed_url(base_url, "f", token)


def survey_answer_token(invitation_id: int, *, key: bytes, expires_at: datetime) -> str:
    """The token of a survey invitation's answer links. It names the invitation only (the
    customer comes from the invitation, never from the request); it expires with the
    invitation, and the invitation's status makes it single-use."""
    return sign(key, SURVEY_ANSWER_PURPOSE, {"invitation": invitation_id}, expires_at=expires_at)


def survey_answer_url(
    invitation_id: int,
    *,
    key: bytes,
    base_url: str,
    expires_at: datetime,
    score: int | None = None,
) -> str:
    """``{base_url}/s/{token}``, with ``?score=N`` for a one-click score link. Opening it (GET
    or a mail scanner's HEAD) only shows the page with the score preselected; the POST of the
    page's form records the answer."""
    url = signed_url(
        base_url, "s", survey_answer_token(invitation_id, key=key, expires_at=expires_at)
    )
    return url if score is None else f"{url}?score={int(score)}"


def weekly_form_token(
    region_id: int, *, staff_id: int, week: str, key: bytes, expires_at: datetime
) -> str:
    """The token of a region's weekly progress form (周反馈表): it names the region, the region
    manager it was sent to and the ISO week, and expires when the week closes."""
    return sign(
        key,
        WEEKLY_FORM_PURPOSE,
        {"region": region_id, "staff": staff_id, "week": week},
        expires_at=expires_at,
    )


def weekly_form_url(
    region_id: int,
    *,
    staff_id: int,
    week: str,
    key: bytes,
    base_url: str,
    expires_at: datetime,
) -> str:
    """``{base_url}/w/{token}``: the region manager's form for the week, on ``crm web``."""
    token = weekly_form_token(
        region_id, staff_id=staff_id, week=week, key=key, expires_at=expires_at
    )
    return signed_url(base_url, "w", token)
