"""``/m/{token}``: a manager's full list of open revisits, linked from their digest (which lists at
most ``DIGEST_MAX_ITEMS`` and says how many more there are).

Each line shows the revisit id, the customer with their full phone as a ``tel:`` link (the digest
email masks it; this page is for the staff member the token names), the due date, and a signed
"record outcome" link (``/r/``, relative) made for this staff member when the page is shown.
Pages of ``PAGE_SIZE`` lines, most overdue first, read by keyset (``?after=``).

The token names the staff member (purpose ``revisit_list``, expiring like the outcome links).
A bad token or an unknown staff member gets the invalid-link 404 like every other link; a staff
member who is no longer active gets a clear refusal (403) instead of the list: their open work
belongs to whoever it is reassigned to. GET only, writes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from crm_web.context import Web
from crm_web.i18n import page_locale
from crm_web.link_tokens import claimed_id
from crm_web.unsubscribe import invalid_link
from tasks.mail.links import REVISIT_LIST_PURPOSE, revisit_outcome_token
from tasks.revisits.manager_list import Cursor, load_owner, load_page, tel_href

REFUSED_STATUS = 403

router = APIRouter()


@router.get("/m/{token}", response_class=HTMLResponse)
async def show_list(token: str, request: Request, web: Web) -> HTMLResponse:
    now = web.clock()
    staff_id = claimed_id(web.signing_key, REVISIT_LIST_PURPOSE, token, now, "staff")
    owner = None if staff_id is None else await run_in_threadpool(load_owner, web.engine, staff_id)
    if owner is None:
        return invalid_link(request, web)
    locale = page_locale(owner.locale, request.headers.get("accept-language"), web.locale_default())
    if not owner.active:
        return web.pages.response(
            "revisit/list_refused.html", locale=locale, status_code=REFUSED_STATUS
        )
    today = now.astimezone(web.settings.tz).date()
    after = Cursor.decode(request.query_params.get("after"))
    page = await run_in_threadpool(load_page, web.engine, owner.staff_id, today=today, after=after)
    key = web.signing_key
    lines = [
        {
            "row": row,
            "tel": tel_href(row.phone),
            "overdue_days": max((today - row.due_on).days, 0),
            # Relative (/m/<token> -> /r/<token>): the outcome page of this very server.
            "outcome_href": "../r/"
            + revisit_outcome_token(row.revisit_id, staff_id=owner.staff_id, key=key, now=now),
        }
        for row in page.rows
    ]
    return web.pages.response(
        "revisit/list.html",
        locale=locale,
        owner=owner,
        page=page,
        lines=lines,
        today=today.isoformat(),
        first_page=after is None,
        next_after=None if page.next_cursor is None else page.next_cursor.encode(),
    )
