"""``/w/{token}``: a region manager's weekly progress form (周反馈表), linked from Sunday's
``weekly_form`` email.

GET and HEAD show the week's figures - the region's and each station's progress against the
target pro-rated by working days, read from the week's latest weekly snapshot - and the form
(prospects contacted, obstacles, next week's plan), filled with what was submitted before;
they write nothing. POST validates (``tasks/targets/rules/weekly_forms.py``) and stores the
region's one form for the week (``tasks.targets.weekly_forms.record_form``): a re-submission
before the week closes updates it, keeping who posted last and when.

As for the other pages: the signed token (claims ``region``, ``staff``, ``week``; it expires
when the week closes) is the only credential, so there is no cookie and no CSRF token; CSP
``form-action 'self'`` keeps the form posting to us. An unknown, expired or tampered link, a
closed week, and a person who is no longer the region's active manager all get the same
invalid-link 404. What the manager typed is shown escaped (the page environment autoescapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from crm_web.context import Web, WebContext
from crm_web.i18n import page_locale
from crm_web.link_tokens import positive_id, token_claims
from crm_web.revisit_outcome import parse_form_body, read_form_body, single_value
from crm_web.unsubscribe import invalid_link
from tasks.mail.links import WEEKLY_FORM_PURPOSE
from tasks.targets.rules.weekly_forms import (
    FIELDS,
    MAX_PROSPECTS,
    MAX_TEXT,
    FormEntry,
    validate_form,
    week_sunday,
)
from tasks.targets.weekly_forms import FormView, load_form, record_form

router = APIRouter()
# Two texts of MAX_TEXT Chinese characters, percent-encoded (9 bytes each), and the rest.
MAX_BODY_BYTES = 2 * MAX_TEXT * 9 + 4096
# The figures each station shows: (column of ``tasks.targets.rules.reports.members``, places).
COLUMNS = (("revenue", 2), ("volume", 0), ("new_customers", 0), ("first_recharge", 2))


@dataclass(frozen=True)
class LinkClaims:
    region_id: int
    staff_id: int
    week: str


@dataclass(frozen=True)
class FormValues:
    """What the form fields show: the stored form, or what was just posted."""

    prospects_contacted: str = ""
    obstacles: str = ""
    next_week_plan: str = ""


def _claims(web: WebContext, token: str) -> LinkClaims | None:
    claims = token_claims(web.signing_key, WEEKLY_FORM_PURPOSE, token, web.clock())
    if claims is None:
        return None
    region, staff, week = (
        positive_id(claims.get("region")),
        positive_id(claims.get("staff")),
        (claims.get("week")),
    )
    if region is None or staff is None or not isinstance(week, str) or week_sunday(week) is None:
        return None
    return LinkClaims(region, staff, week)


def _local(moment: datetime, web: WebContext) -> str:
    return moment.astimezone(web.settings.tz).strftime("%Y-%m-%d %H:%M")


def _stored_values(view: FormView) -> FormValues:
    form = view.form
    if form is None:
        return FormValues()
    return FormValues(
        str(form.prospects_contacted), form.obstacles or "", form.next_week_plan or ""
    )


def _page(
    request: Request,
    web: WebContext,
    view: FormView,
    *,
    values: FormValues,
    errors: dict[str, str],
    saved: bool = False,
    status_code: int = 200,
) -> HTMLResponse:
    locale = page_locale(
        view.staff_locale, request.headers.get("accept-language"), web.locale_default()
    )
    form = view.form
    context: dict[str, Any] = {
        "view": view,
        "columns": COLUMNS,
        "values": values,
        "errors": errors,
        "saved": saved,
        "submitted_at": None if form is None else _local(form.submitted_at, web),
        "max_prospects": MAX_PROSPECTS,
        "max_text": MAX_TEXT,
    }
    return web.pages.response(
        "weekly_form/show.html", locale=locale, status_code=status_code, **context
    )


def _load(web: WebContext, link: LinkClaims) -> FormView | None:
    return load_form(
        web.engine,
        link.region_id,
        link.staff_id,
        link.week,
        company_name=web.settings.company_name,
        zone=web.settings.tz,
        now=web.clock(),
    )


@router.api_route("/w/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def show_form(token: str, request: Request, web: Web) -> HTMLResponse:
    """The week's figures and the form, filled with what was submitted; writes nothing."""
    link = _claims(web, token)
    view = None if link is None else await run_in_threadpool(_load, web, link)
    if view is None:
        return invalid_link(request, web)
    return _page(request, web, view, values=_stored_values(view), errors={})


@router.post("/w/{token}", response_class=HTMLResponse)
async def post_form(token: str, request: Request, web: Web) -> HTMLResponse:
    """Store the region's form for the week (insert, or update the earlier submission)."""
    link = _claims(web, token)
    if link is None:
        return invalid_link(request, web)
    fields = parse_form_body(await read_form_body(request, MAX_BODY_BYTES))
    raw = {name: single_value(fields, name) for name in FIELDS}
    checked = validate_form(
        prospects_contacted=raw["prospects_contacted"],
        obstacles=raw["obstacles"],
        next_week_plan=raw["next_week_plan"],
    )
    if not isinstance(checked, FormEntry):
        view = await run_in_threadpool(_load, web, link)
        if view is None:
            return invalid_link(request, web)
        echo = FormValues(
            *((raw[name] or "").replace("\x00", "")[: MAX_TEXT * 2] for name in FIELDS)
        )
        errors = {problem.field: problem.code for problem in checked}
        return _page(request, web, view, values=echo, errors=errors, status_code=400)
    entry = checked
    now = web.clock()
    view = await run_in_threadpool(
        lambda: record_form(
            web.engine,
            link.region_id,
            link.staff_id,
            link.week,
            entry,
            company_name=web.settings.company_name,
            zone=web.settings.tz,
            now=now,
        )
    )
    if view is None:
        return invalid_link(request, web)
    return _page(request, web, view, values=_stored_values(view), errors={}, saved=True)


__all__ = ["router"]
