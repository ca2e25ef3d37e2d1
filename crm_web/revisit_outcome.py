"""``/r/{token}``: the "record outcome" link beside each revisit in a digest or escalation email.

GET shows the revisit and, while it is open, a form; it writes nothing, because mail scanners and
link previews fetch links nobody clicked. POST records the outcome with ``record_outcome`` in one
transaction, as the staff member the token was sent to.

CSRF: the signed token in the URL is the only credential (as for ``/u/``); there is no session
cookie a forged cross-site form could ride on, so there is no CSRF token either. Our pages can
only post back to us (CSP ``form-action 'self'``), and a forger would need the token itself.

``python-multipart`` is not installed, so FastAPI's ``Form(...)`` is unavailable: the body is read
here, capped at 16 KiB, and parsed with ``urllib.parse.parse_qs`` (browsers post this form as
``application/x-www-form-urlencoded``).

Invalid, expired and tampered tokens, unknown revisits and unknown or departed staff all get the
unsubscribe page's invalid-link 404, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from crm_db.enums import ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Customer, Revisit, Staff
from crm_db.session import session_scope
from crm_web.context import Web, WebContext
from crm_web.i18n import page_locale
from crm_web.link_tokens import positive_id, token_claims
from crm_web.unsubscribe import invalid_link, local_date
from tasks.common.write_lock import get_for_update
from tasks.mail.links import REVISIT_OUTCOME_PURPOSE
from tasks.revisits.completion import MAX_NOTES, REACHED, RevisitOutcomeError, record_outcome

MAX_BODY_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# The order the radio buttons appear in: the usual answer first.
OUTCOME_CHOICES: tuple[ContactOutcome, ...] = (
    ContactOutcome.COMPLETED,
    ContactOutcome.ISSUE_RAISED,
    ContactOutcome.NO_ANSWER,
    ContactOutcome.RESCHEDULED,
)

router = APIRouter()


# --- the link --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkClaims:
    revisit_id: int
    staff_id: int


def claims_from_token(key: bytes, token: str, now: datetime) -> LinkClaims | None:
    """The revisit and staff ids an authentic, unexpired revisit-outcome token names."""
    claims = token_claims(key, REVISIT_OUTCOME_PURPOSE, token, now)
    if claims is None:
        return None
    revisit_id, staff_id = positive_id(claims.get("revisit")), positive_id(claims.get("staff"))
    if revisit_id is None or staff_id is None:
        return None
    return LinkClaims(revisit_id, staff_id)


# --- the form (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeForm:
    outcome: ContactOutcome
    notes: str | None
    # How many outcomes the revisit had when the form was shown (hidden field); lets a re-sent
    # attempt (browser refresh, double click) be recognised. None when absent or unreadable.
    seen_attempts: int | None


@dataclass(frozen=True)
class FormError:
    field: Literal["outcome", "notes"]


def parse_outcome_form(fields: dict[str, list[str]]) -> OutcomeForm | FormError:
    """Validate the posted fields: exactly one known ``outcome``; ``notes`` optional, at most
    ``MAX_NOTES`` characters once browser line endings (CRLF) are counted as one, no NUL."""
    outcomes = fields.get("outcome", [])
    if len(outcomes) != 1 or outcomes[0] not in {choice.value for choice in OUTCOME_CHOICES}:
        return FormError("outcome")
    notes_values = fields.get("notes", [""])
    if len(notes_values) != 1:
        return FormError("notes")
    notes = notes_values[0].replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(notes) > MAX_NOTES or "\x00" in notes:
        return FormError("notes")
    seen = fields.get("seen", [""])
    seen_attempts = int(seen[0]) if len(seen) == 1 and seen[0].isdigit() else None
    return OutcomeForm(ContactOutcome(outcomes[0]), notes or None, seen_attempts)


def parse_form_body(body: bytes) -> dict[str, list[str]]:
    """``application/x-www-form-urlencoded`` fields; a body that is not valid UTF-8 (raw or
    percent-encoded) or holds too many fields reads as empty, which fails validation."""
    try:
        return parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return {}


def single_value(fields: dict[str, list[str]], name: str) -> str | None:
    """The one value of a parsed form field; None when absent; a repeated field reads as
    invalid (NUL, which no validator accepts): no browser sends a field twice."""
    values = fields.get(name)
    if not values:
        return None
    return values[0] if len(values) == 1 else "\x00"


async def read_form_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 415 unless it is a URL-encoded form and with 413 past
    ``limit`` bytes (checked while streaming, so a lying Content-Length cannot get past)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise HTTPException(status_code=415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status_code=413)
    return bytes(body)


# --- the database ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisitView:
    """What the pages show. The customer's name is for the staff member the link was sent to;
    it never goes to a log."""

    revisit_id: int
    customer_name: str
    customer_timezone: str
    abc_class: str
    channel: ContactChannel
    due_on: date
    status: RevisitStatus
    outcome: str | None
    completed_at: datetime | None
    notes: str | None
    attempts: int  # contact_history rows recorded against this revisit
    last_outcome: ContactOutcome | None
    last_staff_id: int | None
    staff_locale: str


def _load_view(session: Session, claims: LinkClaims) -> RevisitView | None:
    """The revisit as the token's staff member sees it, or None if the revisit is unknown or
    the staff member unknown or no longer active (a leaver's links stop working)."""
    staff_locale = session.execute(
        select(Staff.locale).where(Staff.id == claims.staff_id, Staff.active.is_(True))
    ).scalar_one_or_none()
    row = session.execute(
        select(Revisit, Customer.name, Customer.timezone)
        .join(Customer, Customer.id == Revisit.customer_id)
        .where(Revisit.id == claims.revisit_id)
    ).one_or_none()
    if staff_locale is None or row is None:
        return None
    revisit, name, timezone = row
    attempts = session.execute(
        select(func.count())
        .select_from(ContactHistory)
        .where(ContactHistory.revisit_id == revisit.id)
    ).scalar_one()
    last = session.execute(
        select(ContactHistory.outcome, ContactHistory.staff_id)
        .where(ContactHistory.revisit_id == revisit.id)
        .order_by(ContactHistory.id.desc())
        .limit(1)
    ).one_or_none()
    return RevisitView(
        revisit_id=revisit.id,
        customer_name=name,
        customer_timezone=timezone,
        abc_class=revisit.abc_class.value,
        channel=revisit.channel,
        due_on=revisit.due_on,
        status=revisit.status,
        outcome=revisit.outcome,
        completed_at=revisit.completed_at,
        notes=revisit.notes,
        attempts=attempts,
        last_outcome=None if last is None else last[0],
        last_staff_id=None if last is None else last[1],
        staff_locale=staff_locale,
    )


def load_view(engine: Engine, claims: LinkClaims) -> RevisitView | None:
    with session_scope(engine) as session:
        return _load_view(session, claims)


@dataclass(frozen=True)
class Saved:
    view: RevisitView  # after recording
    outcome: ContactOutcome
    notes: str | None
    closed: bool
    duplicate: bool  # nothing was written: the same submission had been recorded already


@dataclass(frozen=True)
class Conflict:
    view: RevisitView  # closed with another outcome, or cancelled
    attempted: ContactOutcome


SaveResult = Saved | Conflict | None  # None: the link no longer names a revisit we can show


def _is_resent_attempt(view: RevisitView, form: OutcomeForm, staff_id: int) -> bool:
    """An attempt outcome posted again from the same rendered form: since the form was shown
    exactly this outcome, by this staff member, was the newest one recorded."""
    return (
        form.outcome not in REACHED
        and form.seen_attempts is not None
        and view.attempts > form.seen_attempts
        and view.last_outcome is form.outcome
        and view.last_staff_id == staff_id
    )


def save_outcome(
    engine: Engine, claims: LinkClaims, form: OutcomeForm, now: datetime
) -> SaveResult:
    """Record ``form`` for the token's revisit and staff member, all in one transaction."""
    with session_scope(engine) as session:
        # Lock first, so the checks below see the committed state: two concurrent posts run one
        # after the other (the second sees the first's outcome) instead of both reading "open".
        get_for_update(session, Revisit, claims.revisit_id)
        view = _load_view(session, claims)
        if view is None:
            return None
        if view.status is not RevisitStatus.OPEN and not (
            view.status is RevisitStatus.DONE and view.outcome == form.outcome.value
        ):
            return Conflict(view, form.outcome)
        if _is_resent_attempt(view, form, claims.staff_id):
            return Saved(view, form.outcome, form.notes, closed=False, duplicate=True)
        try:
            result = record_outcome(
                session,
                claims.revisit_id,
                form.outcome,
                now=now,
                staff_id=claims.staff_id,
                notes=form.notes,
            )
        except RevisitOutcomeError:
            # Not reachable after the checks above (same locked row, notes validated); kept as
            # a conflict rather than a 500 should record_outcome's rules grow.
            return Conflict(view, form.outcome)
        session.flush()
        after = _load_view(session, claims)
        assert after is not None  # the same transaction just read it
        return Saved(
            after, form.outcome, form.notes, result.closed, duplicate=result.already_recorded
        )


# --- the pages -------------------------------------------------------------------------------


def _locale(request: Request, web: WebContext, view: RevisitView) -> str:
    # The staff member's own language first, as in the email they clicked in.
    return page_locale(
        view.staff_locale, request.headers.get("accept-language"), web.locale_default()
    )


def _page(
    request: Request,
    web: WebContext,
    view: RevisitView,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    completed_on = (
        None if view.completed_at is None else local_date(view.completed_at, view.customer_timezone)
    )
    return web.pages.response(
        template,
        locale=_locale(request, web, view),
        status_code=status_code,
        revisit=view,
        completed_on=completed_on,
        choices=[choice.value for choice in OUTCOME_CHOICES],
        max_notes=MAX_NOTES,
        **context,
    )


@router.get("/r/{token}", response_class=HTMLResponse)
def show_revisit(token: str, request: Request, web: Web) -> HTMLResponse:
    """The revisit, with the outcome form while it is open; writes nothing."""
    claims = claims_from_token(web.signing_key, token, web.clock())
    view = None if claims is None else load_view(web.engine, claims)
    if view is None:
        return invalid_link(request, web)
    return _page(request, web, view, "revisit/show.html")


@router.post("/r/{token}", response_class=HTMLResponse)
async def post_outcome(token: str, request: Request, web: Web) -> HTMLResponse:
    """Record the posted outcome (a re-sent form is harmless, see ``save_outcome``)."""
    now = web.clock()
    claims = claims_from_token(web.signing_key, token, now)
    if claims is None:
        return invalid_link(request, web)
    body = await read_form_body(request)
    form = parse_outcome_form(parse_form_body(body))
    if isinstance(form, FormError):
        view = await run_in_threadpool(load_view, web.engine, claims)
        if view is None:
            return invalid_link(request, web)
        return _page(request, web, view, "revisit/bad_form.html", status_code=400, field=form.field)
    result = await run_in_threadpool(save_outcome, web.engine, claims, form, now)
    if result is None:
        return invalid_link(request, web)
    if isinstance(result, Conflict):
        return _page(
            request,
            web,
            result.view,
            "revisit/conflict.html",
            status_code=409,
            attempted=result.attempted.value,
        )
    return _page(
        request,
        web,
        result.view,
        "revisit/saved.html",
        saved_outcome=result.outcome.value,
        saved_notes=result.notes,
        duplicate=result.duplicate,
    )
