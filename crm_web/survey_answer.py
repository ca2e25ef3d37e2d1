"""``/s/{token}``: the answer page of a survey invitation (issue #17).

GET and HEAD show the question - the score a one-click link names (``?score=N``) preselected,
two optional 1-5 ratings and a suggestion box - and write nothing: mail scanners and link
previews fetch links nobody clicked. POST records the answer through
``tasks.surveys.answers.record_link_form``, once per invitation; a repeat of the recorded
answer shows the same thanks, anything else posted to a used link is refused.

As for ``/u/``, ``/r/`` and ``/f/``: the signed token (``tasks.mail.links.survey_answer_token``,
claim ``invitation``) is the only credential, so there is no cookie and no CSRF token; CSP
``form-action 'self'`` keeps the form posting to us; the body is parsed here. Every unknown,
used, expired or tampered link gets the same invalid-link 404 (``invalid_link``: it depends only
on ``Accept-Language``). The customer comes from the invitation, never from the request; the
page shows nothing about them beyond the answer they just gave. Each client is braked by
``crm_web.rate_limit.ClientLimiter``: requests per minute, and refused links per ten minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from crm_web.context import Web, WebContext
from crm_web.i18n import negotiate_locale, page_locale
from crm_web.link_tokens import claimed_id
from crm_web.rate_limit import ClientLimiter
from crm_web.revisit_outcome import parse_form_body, read_form_body, single_value
from crm_web.unsubscribe import invalid_link, local_date
from tasks.mail.links import SURVEY_ANSWER_PURPOSE
from tasks.surveys.answers import (
    FormRejected,
    Invitation,
    Outcome,
    read_invitation,
    record_link_form,
)
from tasks.surveys.rules.answers import (
    MAX_SUGGESTION,
    Answer,
    FieldProblem,
    Submission,
    complaint_request,
    link_answerable,
    preselected_score,
    rating_choices,
    score_choices,
    score_range,
    validate_answer,
)

TOO_MANY_STATUS = 429
FIELDS = ("score", "product_rating", "service_rating", "suggestion", "as_complaint")
# The value the "treat this as a complaint" checkbox posts when ticked (absent when not).
TICKED = "1"

router = APIRouter()
# A suggestion of MAX_SUGGESTION Chinese characters, percent-encoded (9 bytes each), and the
# rest of the form: the shared 16 KiB default would refuse a full-length Chinese suggestion
# with a bare 413 before the form could say what is wrong.
MAX_BODY_BYTES = MAX_SUGGESTION * 9 + 4096


def limiter_of(request: Request) -> ClientLimiter:
    limiter: ClientLimiter = request.app.state.survey_answer_limiter
    return limiter


def client_key(request: Request) -> str:
    # uvicorn puts the proxy's X-Forwarded-For client here when it trusts the proxy.
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class FormValues:
    """What the form shows: the preselected or posted choices, as the page re-renders them."""

    score: int | None = None
    product_rating: int | None = None
    service_rating: int | None = None
    suggestion: str = ""
    as_complaint: bool = False


def _too_many(request: Request, web: WebContext, wait: int) -> HTMLResponse:
    locale = negotiate_locale(request.headers.get("accept-language"), web.locale_default())
    response = web.pages.response(
        "survey/too_many.html", locale=locale, status_code=TOO_MANY_STATUS
    )
    response.headers["Retry-After"] = str(wait)
    return response


def _refused(request: Request, web: WebContext) -> HTMLResponse:
    limiter_of(request).failed(client_key(request))
    return invalid_link(request, web)


def _page(
    request: Request,
    web: WebContext,
    invitation: Invitation,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    locale = page_locale(
        invitation.locale, request.headers.get("accept-language"), web.locale_default()
    )
    return web.pages.response(
        template,
        locale=locale,
        status_code=status_code,
        kind=invitation.kind.value,
        score_choices=score_choices(invitation.kind),
        rating_choices=rating_choices(),
        score_max=score_range(invitation.kind)[1],
        max_suggestion=MAX_SUGGESTION,
        **context,
    )


def _thanks(
    request: Request, web: WebContext, invitation: Invitation, complaint_reference: str | None
) -> HTMLResponse:
    assert invitation.answer is not None and invitation.responded_at is not None
    return _page(
        request,
        web,
        invitation,
        "survey/thanks.html",
        answer=invitation.answer,
        answered_on=local_date(invitation.responded_at, invitation.timezone),
        complaint_reference=complaint_reference,
    )


def _invitation(web: WebContext, token: str) -> Invitation | None:
    invitation_id = claimed_id(
        web.signing_key, SURVEY_ANSWER_PURPOSE, token, web.clock(), "invitation"
    )
    return None if invitation_id is None else read_invitation(web.engine, invitation_id)


@router.api_route("/s/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show_survey(token: str, request: Request, web: Web) -> HTMLResponse:
    """The question, the score of a one-click link preselected; writes nothing."""
    wait = limiter_of(request).admit(client_key(request))
    if wait is not None:
        return _too_many(request, web, wait)
    invitation = _invitation(web, token)
    if invitation is None or not link_answerable(
        invitation.status, invitation.expires_at, web.clock()
    ):
        return _refused(request, web)
    score = preselected_score(invitation.kind, request.query_params.get("score"))
    return _page(
        request, web, invitation, "survey/show.html", form=FormValues(score=score), errors={}
    )


def _posted(
    fields: dict[str, list[str]], invitation: Invitation
) -> Submission | list[FieldProblem]:
    repeated = [name for name in FIELDS if len(fields.get(name, [])) > 1]
    if repeated:  # no browser sends a field twice: refuse rather than pick one
        return [FieldProblem(name, "invalid", "sent more than once") for name in repeated]
    answer = validate_answer(
        invitation.kind,
        score=single_value(fields, "score"),
        product_rating=single_value(fields, "product_rating"),
        service_rating=single_value(fields, "service_rating"),
        suggestion=single_value(fields, "suggestion"),
    )
    if not isinstance(answer, Answer):
        return answer
    ticked = single_value(fields, "as_complaint")
    if ticked not in (None, TICKED):
        return [FieldProblem("as_complaint", "invalid", "not the checkbox's value")]
    request = complaint_request(answer, ticked == TICKED)
    if isinstance(request, FieldProblem):
        return [request]
    return Submission(answer, request)


def _echo(fields: dict[str, list[str]], invitation: Invitation) -> FormValues:
    """The posted choices that are valid, to show again beside the errors."""

    def number(name: str, low: int, high: int) -> int | None:
        raw = single_value(fields, name)
        return (
            int(raw)
            if raw and raw.isascii() and raw.isdigit() and low <= int(raw) <= high
            else None
        )

    low, high = score_range(invitation.kind)
    suggestion = single_value(fields, "suggestion") or ""
    return FormValues(
        score=number("score", low, high),
        product_rating=number("product_rating", 1, 5),
        service_rating=number("service_rating", 1, 5),
        suggestion=suggestion[: MAX_SUGGESTION * 2].replace("\x00", ""),
        as_complaint=single_value(fields, "as_complaint") == TICKED,
    )


@router.post("/s/{token}", response_class=HTMLResponse)
async def post_survey(token: str, request: Request, web: Web) -> HTMLResponse:
    """Record the answer (once per invitation; a repeat of it shows the same thanks)."""
    wait = limiter_of(request).admit(client_key(request))
    if wait is not None:
        return _too_many(request, web, wait)
    now = web.clock()
    invitation_id = claimed_id(web.signing_key, SURVEY_ANSWER_PURPOSE, token, now, "invitation")
    if invitation_id is None:
        return _refused(request, web)
    fields = parse_form_body(await read_form_body(request, MAX_BODY_BYTES))
    # One transaction in one thread hop: lock and read the invitation, check the form against
    # its campaign, record.
    result = await run_in_threadpool(
        lambda: record_link_form(
            web.engine, invitation_id, lambda invitation: _posted(fields, invitation), now=now
        )
    )
    if isinstance(result, FormRejected):
        invitation = result.invitation
        if not link_answerable(invitation.status, invitation.expires_at, now):
            return _refused(request, web)
        return _page(
            request,
            web,
            invitation,
            "survey/show.html",
            status_code=400,
            form=_echo(fields, invitation),
            errors={problem.field: problem.code for problem in result.problems},
        )
    if result.outcome is Outcome.REFUSED or result.invitation is None:
        return _refused(request, web)
    return _thanks(request, web, result.invitation, result.complaint_reference)


__all__ = ["router"]
