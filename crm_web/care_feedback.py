"""``/f/{token}``: the link in a care email, where the customer answers what the email asked:
whether the issue they raised last time was solved, or - an email without an issue - whether
they would like a call ("please call me").

GET shows the question (the email's buttons preselect an answer with ``?answer=``) and writes
nothing: mail scanners and link previews fetch links nobody clicked. POST records the answer
with ``tasks.revisits.care_feedback.record_answer``, once per email; a second answer shows the
first. "Not solved" opens a revisit for the account manager to call
and so does "please call me" (``tasks/revisits/rules/care_feedback.py``).

As for ``/u/`` and ``/r/``: the signed token is the only credential (no cookie, so no CSRF
token), the body is parsed here (no ``python-multipart``), and every kind of bad link gets the
same invalid-link 404. The page shows no customer data beyond the account manager's name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from crm_web.context import Web, WebContext
from crm_web.i18n import page_locale
from crm_web.link_tokens import claimed_id
from crm_web.revisit_outcome import parse_form_body, read_form_body
from crm_web.unsubscribe import invalid_link, local_date
from tasks.mail.links import CARE_FEEDBACK_PURPOSE
from tasks.revisits.care_feedback import CareEmail, load_care_email, record_answer
from tasks.revisits.rules.care_feedback import MAX_COMMENT, Answer, clean_comment, questions_for

router = APIRouter()


def outbox_id_from_token(key: bytes, token: str, now: datetime) -> int | None:
    """The outbox row an authentic, unexpired care-feedback token names, else ``None``."""
    return claimed_id(key, CARE_FEEDBACK_PURPOSE, token, now, "message")


def parse_answer_form(
    fields: dict[str, list[str]], offered: tuple[Answer, ...]
) -> tuple[Answer, str | None] | str:
    """The answer and comment, or the name of the field that is wrong: exactly one of the
    ``offered`` answers; ``comment`` optional, at most ``MAX_COMMENT`` characters, no NUL."""
    answers = fields.get("answer", [])
    if len(answers) != 1 or answers[0] not in {a.value for a in offered}:
        return "answer"
    comments = fields.get("comment", [""])
    if len(comments) != 1:
        return "comment"
    try:
        comment = clean_comment(comments[0])
    except ValueError:
        return "comment"
    return Answer(answers[0]), comment


def _page(
    request: Request,
    web: WebContext,
    email: CareEmail,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    locale = page_locale(email.locale, request.headers.get("accept-language"), web.locale_default())
    answered_on = (
        None if email.answered_at is None else local_date(email.answered_at, email.timezone)
    )
    # The call's day (``tasks.revisits.rules.care_feedback.call_day``: never one in the past).
    call_on = email.call_on.isoformat() if email.call_on else None
    return web.pages.response(
        template,
        locale=locale,
        status_code=status_code,
        email=email,
        sent_on=local_date(email.sent_at, email.timezone),
        answered_on=answered_on,
        call_on=call_on,
        answers=[a.value for a in questions_for(email.asked_about_issue)],
        max_comment=MAX_COMMENT,
        **context,
    )


def _offered_values(email: CareEmail) -> set[str]:
    return {a.value for a in questions_for(email.asked_about_issue)}


@router.get("/f/{token}", response_class=HTMLResponse)
def show_question(token: str, request: Request, web: Web) -> HTMLResponse:
    """The question with the answer form, or the answer already given; writes nothing."""
    outbox_id = outbox_id_from_token(web.signing_key, token, web.clock())
    email = (
        None
        if outbox_id is None
        else load_care_email(web.engine, outbox_id, timezone=web.settings.tz)
    )
    if email is None:
        return invalid_link(request, web)
    if email.answer is not None:
        return _page(request, web, email, "care_feedback/answered.html", duplicate=False)
    preselected = request.query_params.get("answer")
    return _page(
        request,
        web,
        email,
        "care_feedback/show.html",
        preselected=preselected if preselected in _offered_values(email) else None,
        error=None,
    )


@router.post("/f/{token}", response_class=HTMLResponse)
async def post_answer(token: str, request: Request, web: Web) -> HTMLResponse:
    """Record the answer (idempotent per email, see ``record_answer``)."""
    now = web.clock()
    outbox_id = outbox_id_from_token(web.signing_key, token, now)
    if outbox_id is None:
        return invalid_link(request, web)
    body = await read_form_body(request)
    email = await run_in_threadpool(
        lambda: load_care_email(web.engine, outbox_id, timezone=web.settings.tz)
    )
    if email is None:
        return invalid_link(request, web)
    parsed = parse_answer_form(parse_form_body(body), questions_for(email.asked_about_issue))
    if isinstance(parsed, str):
        if email.answer is not None:
            return _page(request, web, email, "care_feedback/answered.html", duplicate=True)
        return _page(
            request,
            web,
            email,
            "care_feedback/show.html",
            status_code=400,
            preselected=None,
            error=parsed,
        )
    answer, comment = parsed
    recorded = await run_in_threadpool(
        record_answer, web.engine, outbox_id, answer, comment, now=now, timezone=web.settings.tz
    )
    if recorded is None:
        return invalid_link(request, web)
    return _page(
        request, web, recorded.email, "care_feedback/answered.html", duplicate=recorded.duplicate
    )
