"""The care-feedback link in a real headless Chromium, against a real uvicorn server: the
customer clicks "No, not yet" in the email, adds a comment, sends it, and goes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine, select

from crm_db.enums import ContactChannel, RevisitStatus
from crm_db.models import CareFeedback, ContactHistory, Revisit, Staff
from crm_db.session import session_scope
from crm_web.app import create_app
from tests.crm_web.browser import check_screenshots, launch_chromium, open_page
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.crm_web.live_server import live_server
from tests.crm_web.test_care_feedback import feedback_token, written
from tests.factories import make_care_email

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_answer_not_solved_in_chromium(engine: Engine, browser: Browser, tmp_path: Path) -> None:
    row = make_care_email(engine)
    token = feedback_token(row.outbox_id)
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    comment = "余额还是不对 <b>急</b>\n请打电话"
    console: list[str] = []

    with (
        live_server(app) as base_url,
        open_page(browser, locale="zh-CN", height=900, console=console) as page,
    ):
        # The email's "还没有解决" button: the page opens with that answer chosen.
        response = page.goto(f"{base_url}/f/{token}?answer=not_solved")
        assert response is not None and response.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == "您的问题解决了吗？"
        assert page.get_by_role("radio", name="还没有解决").is_checked()
        assert not page.get_by_role("radio", name="已解决，一切正常").is_checked()
        # The inline stylesheets are allowed by our CSP and applied.
        background = page.get_by_role("button", name="提交").evaluate(
            "b => getComputedStyle(b).backgroundColor"
        )
        assert background == "rgb(194, 65, 12)"
        page.get_by_label("还有什么想告诉我们的吗？（选填）").fill(comment)
        page.screenshot(path=tmp_path / "form.png", full_page=True)
        assert written(engine) == (0, 0, 0)  # opening and filling the page changed nothing

        page.get_by_role("button", name="提交").click()
        page.get_by_role("heading", name="感谢您的回复").wait_for()
        assert "计划于 2026-11-24 致电。" in page.content()
        page.screenshot(path=tmp_path / "answered.png", full_page=True)

        # Back to the question (no-store: the browser fetches it again): it shows the answer
        # given, with no form to send a second one.
        page.go_back()
        page.get_by_role("heading", name="感谢您的回复").wait_for()
        assert page.get_by_role("radio").count() == 0
        assert "很抱歉问题还没有解决。" in page.content()

    assert written(engine) == (1, 1, 1)
    with session_scope(engine) as session:
        feedback = session.scalars(select(CareFeedback)).one()
        contact = session.get(ContactHistory, feedback.contact_id)
        assert contact is not None
        assert contact.notes == f"customer feedback: not solved\n{comment}"
        follow_up = session.get(Revisit, feedback.follow_up_revisit_id)
        assert follow_up is not None
        assert (follow_up.status, follow_up.channel) == (RevisitStatus.OPEN, ContactChannel.PHONE)
    assert not [line for line in console if "Content Security Policy" in line], console
    check_screenshots(
        tmp_path, ("form.png", "answered.png"), keep_as=f"care-feedback-{engine.dialect.name}"
    )


@pytest.mark.parametrize(
    ("locale", "heading", "button", "submit", "thanks"),
    [
        ("zh-CN", "有什么可以帮您的吗？", "请给我打电话", "提交", "会给您打电话。"),
        ("en", "Is there anything we can help with?", "Please call me", "Send", "will call you."),
    ],
)
def test_please_call_me_in_chromium(
    engine: Engine,
    browser: Browser,
    tmp_path: Path,
    locale: str,
    heading: str,
    button: str,
    submit: str,
    thanks: str,
) -> None:
    row = make_care_email(engine, locale=locale, last_issue=None)
    token = feedback_token(row.outbox_id)
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    console: list[str] = []

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=900, console=console) as page,
    ):
        # The email's one button: the page offers that one answer, already chosen.
        response = page.goto(f"{base_url}/f/{token}?answer=call_me")
        assert response is not None and response.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == heading
        assert page.get_by_role("radio").count() == 1
        assert page.get_by_role("radio", name=button).is_checked()
        assert written(engine) == (0, 0, 0)

        page.get_by_role("button", name=submit).click()
        page.get_by_role("heading", level=1).wait_for()
        with session_scope(engine) as session:
            manager = session.get(Staff, row.account_manager_id)
            assert manager is not None
        text = page.inner_text("main")
        # Who will call (the name read naturally, no space before 会给您打电话), and the day.
        separator = "" if locale == "zh-CN" else " "
        assert f"{manager.name}{separator}{thanks}" in text
        assert "2026-11-24" in text

    assert written(engine) == (1, 1, 1)
    assert not [line for line in console if "Content Security Policy" in line], console
