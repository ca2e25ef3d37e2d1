"""``/u/{token}``: the unsubscribe link in every customer email (issue #3).

GET only shows a confirmation page and changes nothing, because mail scanners and link previews
fetch links nobody clicked. POST unsubscribes: the page's button, and the RFC 8058 one-click POST
a mail provider sends (body ``List-Unsubscribe=One-Click``, no cookies). The signed token is the
only credential, so the body is not parsed at all and there is no CSRF token to check.

Unknown customer, expired token and tampered token all get the same 404 page (byte for byte), so
the link reveals nothing about which customers exist.

Re-subscribing is the customer's own action too: the done page offers "subscribe again", a form
POST to ``/u/{token}/resubscribe`` (the same signed token; its own path, so a one-click POST to
the ``List-Unsubscribe`` URL can only ever unsubscribe). That path takes POST only (a GET is a
405): its pages post elsewhere, and no page is ever shown at it that could post back to it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from crm_core.masking import mask_email
from crm_web.context import Web, WebContext
from crm_web.i18n import negotiate_locale, page_locale
from crm_web.link_tokens import claimed_id
from crm_web.subscriptions import (
    Subscriber,
    load_subscriber,
    resubscribe_customer,
    unsubscribe_customer,
)

PURPOSE = "unsubscribe"
INVALID_LINK_STATUS = 404

router = APIRouter()


def customer_id_from_token(key: bytes, token: str, now: datetime) -> int | None:
    """The customer id an authentic unsubscribe token names, else ``None``. Unsubscribe links
    never expire (RFC 8058: withdrawing consent must stay easy), not even those issued while
    they still carried an expiry."""
    return claimed_id(key, PURPOSE, token, now, "customer", honour_expiry=False)


def local_date(moment: datetime, timezone: str) -> str:
    """The calendar date of ``moment`` where the customer lives (UTC if their zone is unknown)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).date().isoformat()


def invalid_link(request: Request, web: WebContext) -> HTMLResponse:
    # Depends only on the request's Accept-Language: never on what the token said or what the
    # database holds, so every kind of bad link gets the identical answer.
    locale = negotiate_locale(request.headers.get("accept-language"), web.locale_default())
    return web.pages.response("link_invalid.html", locale=locale, status_code=INVALID_LINK_STATUS)


def _subscriber_page(
    request: Request,
    web: WebContext,
    subscriber: Subscriber,
    token: str,
    *,
    resubscribed: bool = False,
) -> HTMLResponse:
    locale = page_locale(
        subscriber.locale, request.headers.get("accept-language"), web.locale_default()
    )
    if subscriber.unsubscribed_at is not None:
        return web.pages.response(
            "unsubscribe/done.html",
            locale=locale,
            since=local_date(subscriber.unsubscribed_at, subscriber.timezone),
            token=token,
        )
    return web.pages.response(
        "unsubscribe/resubscribed.html" if resubscribed else "unsubscribe/confirm.html",
        locale=locale,
        address=mask_email(subscriber.email),
        token=token,
    )


@router.get("/u/{token}", response_class=HTMLResponse)
def confirm_unsubscribe(token: str, request: Request, web: Web) -> HTMLResponse:
    """Confirmation page (or the done page if already unsubscribed); writes nothing."""
    customer_id = customer_id_from_token(web.signing_key, token, web.clock())
    subscriber = None if customer_id is None else load_subscriber(web.engine, customer_id)
    if subscriber is None:
        return invalid_link(request, web)
    return _subscriber_page(request, web, subscriber, token)


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request, web: Web) -> HTMLResponse:
    """Unsubscribe (idempotent): the page's button and RFC 8058 one-click POSTs land here."""
    now = web.clock()
    customer_id = customer_id_from_token(web.signing_key, token, now)
    subscriber = None if customer_id is None else unsubscribe_customer(web.engine, customer_id, now)
    if subscriber is None:
        return invalid_link(request, web)
    return _subscriber_page(request, web, subscriber, token)


@router.post("/u/{token}/resubscribe", response_class=HTMLResponse)
def resubscribe(token: str, request: Request, web: Web) -> HTMLResponse:
    """Subscribe again (idempotent), audited with source ``resubscribe_link``."""
    now = web.clock()
    customer_id = customer_id_from_token(web.signing_key, token, now)
    subscriber = None if customer_id is None else resubscribe_customer(web.engine, customer_id, now)
    if subscriber is None:
        return invalid_link(request, web)
    return _subscriber_page(request, web, subscriber, token, resubscribed=True)
