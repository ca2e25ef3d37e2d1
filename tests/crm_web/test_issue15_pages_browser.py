"""The pages of issue 15 in a real headless Chromium against a real uvicorn server, in zh-CN and
en: a manager's full list of open revisits (from the digest), the care-feedback answer naming the
branch manager when the account manager has left, and re-subscribing on the unsubscribe page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine, select

from crm_db.models import ConsentChange, Staff
from crm_db.session import session_scope
from crm_web.app import create_app
from tests.crm_web.browser import check_screenshots, launch_chromium, open_page
from tests.crm_web.factories import (
    NOW,
    Clock,
    make_customer,
    unsubscribe_token,
    unsubscribed_at,
    web_settings,
)
from tests.crm_web.live_server import live_server
from tests.crm_web.test_care_feedback import feedback_token
from tests.crm_web.test_revisit_list import TODAY, add_revisit, list_token
from tests.crm_web.test_revisit_outcome import revisit_state
from tests.factories import make_care_email, make_org

pytestmark = pytest.mark.browser

LOCALES = ["zh-CN", "en"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


LIST_TEXT = {
    "zh-CN": ("的待回访客户", "共 3 条待办回访，其中 2 条已逾期。", "记录结果", "逾期 5 天",
              "记录回访结果"),
    "en": ("Open revisits of", "3 open revisits, 2 of them overdue.", "Record outcome",
           "5 d overdue", "Record the revisit outcome"),
}  # fmt: skip


@pytest.mark.parametrize("locale", LOCALES)
def test_the_full_list_in_chromium(
    engine: Engine, browser: Browser, tmp_path: Path, locale: str
) -> None:
    heading, summary, action, overdue, outcome_heading = LIST_TEXT[locale]
    with session_scope(engine) as session:
        org = make_org(session)
        org.account_manager.locale = locale
        first = add_revisit(session, org, TODAY - timedelta(days=5), phone="+86 138-1234-5678")
        add_revisit(session, org, TODAY - timedelta(days=1))
        add_revisit(session, org, TODAY + timedelta(days=3), phone=None)
        staff_id, name = org.account_manager.id, org.account_manager.name
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    console: list[str] = []

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=900, console=console) as page,
    ):
        response = page.goto(f"{base_url}/m/{list_token(staff_id)}")
        assert response is not None and response.status == 200
        assert page.get_by_role("heading", level=1).inner_text().find(name) >= 0
        assert heading in page.get_by_role("heading", level=1).inner_text()
        text = page.inner_text("main")
        assert summary in text and overdue in text and f"#{first}" in text
        rows = page.locator("table.revisits tbody tr")
        assert rows.count() == 3
        tel = rows.nth(0).get_by_role("link", name="+86 138-1234-5678")
        assert tel.get_attribute("href") == "tel:+8613812345678"
        # The wide layout's own stylesheet applies (CSP allows inline styles only).
        width = page.locator("main").evaluate("m => getComputedStyle(m).maxWidth")
        assert width == "1024px"
        page.screenshot(path=tmp_path / "list.png", full_page=True)

        # "Record outcome" on the first line opens that revisit's outcome page.
        rows.nth(0).get_by_role("link", name=action).click()
        page.get_by_role("heading", name=outcome_heading).wait_for()
        assert revisit_state(engine, first).outcome is None  # opening it changed nothing

    assert not [line for line in console if "Content Security Policy" in line], console
    check_screenshots(
        tmp_path, ("list.png",), keep_as=f"revisit-list-{locale}-{engine.dialect.name}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_a_departed_managers_list_is_refused_in_chromium(
    engine: Engine, browser: Browser, locale: str
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        org.account_manager.locale = locale
        org.account_manager.active = False
        add_revisit(session, org, TODAY)
        staff_id = org.account_manager.id
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    expected = "此链接已停用" if locale == "zh-CN" else "This link is no longer active"

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=700, console=[]) as page,
    ):
        response = page.goto(f"{base_url}/m/{list_token(staff_id)}")
        assert response is not None and response.status == 403
        assert page.get_by_role("heading", level=1).inner_text() == expected
        assert page.locator("table").count() == 0


FEEDBACK_TEXT = {
    "zh-CN": ("请给我打电话", "提交", "网点经理{name}会给您打电话。", "计划于 2026-11-24 致电。"),
    "en": ("Please call me", "Send", "{name}, the branch manager, will call you.",
           "The call is planned for 2026-11-24."),
}  # fmt: skip


@pytest.mark.parametrize("locale", LOCALES)
def test_feedback_names_the_branch_manager_when_the_account_manager_left(
    engine: Engine, browser: Browser, tmp_path: Path, locale: str
) -> None:
    button, submit, who, when = FEEDBACK_TEXT[locale]
    row = make_care_email(engine, locale=locale, last_issue=None, manager_active=False)
    with session_scope(engine) as session:
        branch_manager = session.get(Staff, row.branch_manager_id)
        assert branch_manager is not None
        name = branch_manager.name
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    console: list[str] = []

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=900, console=console) as page,
    ):
        page.goto(f"{base_url}/f/{feedback_token(row.outbox_id)}?answer=call_me")
        assert page.get_by_role("radio", name=button).is_checked()
        # Before answering, the choice already says who will call.
        assert who.format(name=name) in page.inner_text("form")
        page.get_by_role("button", name=submit).click()
        page.get_by_role("heading", level=1).wait_for()
        text = page.inner_text("main")
        assert who.format(name=name) in text and when in text
        for vague in ("我们会", "联系您", "we will contact", "Your account manager"):
            assert vague not in text
        page.screenshot(path=tmp_path / "answered.png", full_page=True)

    assert not [line for line in console if "Content Security Policy" in line], console
    check_screenshots(
        tmp_path, ("answered.png",), keep_as=f"feedback-fallback-{locale}-{engine.dialect.name}"
    )


RESUBSCRIBE_TEXT = {
    "zh-CN": ("您已成功退订", "重新订阅", "您已重新订阅", "确认退订"),
    "en": ("You are unsubscribed", "Subscribe again", "You are subscribed again", "Unsubscribe"),
}


@pytest.mark.parametrize("locale", LOCALES)
def test_unsubscribe_then_resubscribe_in_chromium(
    engine: Engine, browser: Browser, tmp_path: Path, locale: str
) -> None:
    done, again, resubscribed, unsubscribe = RESUBSCRIBE_TEXT[locale]
    customer = make_customer(engine, locale=locale)
    token = unsubscribe_token(customer, issued_at=NOW)
    clock = Clock(NOW)
    app = create_app(engine, web_settings(), clock=clock)
    console: list[str] = []

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=800, console=console) as page,
    ):
        page.goto(f"{base_url}/u/{token}")
        page.get_by_role("button", name=unsubscribe).click()
        page.get_by_role("heading", name=done).wait_for()
        assert unsubscribed_at(engine, customer) == NOW
        page.screenshot(path=tmp_path / "done.png", full_page=True)

        clock.advance(timedelta(days=2))
        page.get_by_role("button", name=again).click()
        page.get_by_role("heading", name=resubscribed).wait_for()
        assert page.url == f"{base_url}/u/{token}/resubscribe"
        assert unsubscribed_at(engine, customer) is None
        page.screenshot(path=tmp_path / "resubscribed.png", full_page=True)

        # And out again from there: the button posts to the unsubscribe link itself.
        clock.advance(timedelta(days=1))
        page.get_by_role("button", name=unsubscribe).click()
        page.get_by_role("heading", name=done).wait_for()
        assert page.url == f"{base_url}/u/{token}"

    assert unsubscribed_at(engine, customer) == NOW + timedelta(days=3)
    with session_scope(engine) as session:
        audit = [
            (r.new_value, r.source, r.changed_at.date())
            for r in session.scalars(
                select(ConsentChange)
                .where(ConsentChange.customer_id == customer)
                .order_by(ConsentChange.id)
            )
        ]
    assert audit == [
        ("true", "unsubscribe_link", date(2026, 11, 23)),
        ("false", "resubscribe_link", date(2026, 11, 25)),
        ("true", "unsubscribe_link", date(2026, 11, 26)),
    ]
    assert not [line for line in console if "Content Security Policy" in line], console
    check_screenshots(
        tmp_path,
        ("done.png", "resubscribed.png"),
        keep_as=f"resubscribe-{locale}-{engine.dialect.name}",
    )
