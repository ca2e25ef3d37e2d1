"""The survey answer page in a real headless Chromium, phone-sized and without JavaScript,
against a real uvicorn server: the customer clicks score 9 in the email, sees it chosen, adds
ratings and a suggestion, sends it, and is thanked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine, select

from crm_db.enums import InvitationStatus
from crm_db.models import SurveyResponse
from crm_db.session import session_scope
from crm_web.app import create_app
from tasks.mail.links import survey_answer_url
from tests.crm_web.browser import check_screenshots, launch_chromium
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.crm_web.live_server import live_server
from tests.tasks.surveys.answer_factories import KEY, invitation_status, make_invitation, responses

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_one_click_answer_on_a_phone_without_javascript(
    sqlite_engine: Engine, browser: Browser, tmp_path: Path
) -> None:
    row = make_invitation(sqlite_engine, now=NOW)
    app = create_app(sqlite_engine, web_settings(), clock=Clock(NOW))
    suggestion = "希望增加 <b>夜间</b> 服务\n谢谢"
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    try:
        with live_server(app) as base_url:
            page = context.new_page()
            link = survey_answer_url(
                row.invitation_id, key=KEY, base_url=base_url, expires_at=row.expires_at, score=9
            )
            response = page.goto(link)
            assert response is not None and response.status == 200
            assert page.get_by_role("heading", level=1).inner_text() == (
                "您有多大可能向朋友或同事推荐我们？"
            )
            # The score of the link clicked is chosen; nothing else is.
            scores = page.locator('input[name="score"]')
            assert scores.count() == 11
            assert page.locator('input[name="score"][value="9"]').is_checked()
            assert page.locator('input[name="score"]:checked').count() == 1
            # Fits a phone: nothing wider than the screen.
            main_box = page.locator("main").bounding_box()
            assert main_box is not None and main_box["width"] <= 390
            page.locator('input[name="product_rating"][value="4"]').check(force=True)
            page.get_by_label("您对我们产品的体验和改进建议（选填）").fill(suggestion)
            page.screenshot(path=tmp_path / "form.png", full_page=True)
            assert responses(sqlite_engine) == 0  # opening and filling changed nothing

            page.get_by_role("button", name="提交评价").click()
            page.get_by_role("heading", name="感谢您的评价").wait_for()
            text = page.inner_text("main")
            assert "9 / 10" in text and "4 / 5" in text
            # The suggestion comes back as text, tags and all, never as markup.
            assert "希望增加 <b>夜间</b> 服务" in text
            assert page.locator("main b").count() == 0
            page.screenshot(path=tmp_path / "thanks.png", full_page=True)
    finally:
        context.close()

    assert invitation_status(sqlite_engine, row.invitation_id) is InvitationStatus.RESPONDED
    with session_scope(sqlite_engine) as session:
        stored = session.scalars(select(SurveyResponse)).one()
        assert (stored.score, stored.product_rating, stored.service_rating) == (9, 4, None)
        assert stored.comment == suggestion
    check_screenshots(tmp_path, ("form.png", "thanks.png"), keep_as="survey-answer")


def test_a_detractor_ticks_treat_as_complaint_and_gets_a_reference(
    sqlite_engine: Engine, browser: Browser, tmp_path: Path
) -> None:
    from crm_db.defaults import ensure_default_policies
    from crm_db.enums import ComplaintSource
    from crm_db.models import Complaint

    with session_scope(sqlite_engine) as session:
        ensure_default_policies(session, now=NOW)
    row = make_invitation(sqlite_engine, now=NOW)
    app = create_app(sqlite_engine, web_settings(), clock=Clock(NOW))
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    try:
        with live_server(app) as base_url:
            page = context.new_page()
            link = survey_answer_url(
                row.invitation_id, key=KEY, base_url=base_url, expires_at=row.expires_at, score=2
            )
            page.goto(link)
            box = page.get_by_label("把这条意见作为投诉处理")
            assert not box.is_checked()  # opt-in: never ticked for the customer
            # Ticked without a comment: asked to write one, nothing recorded.
            box.check()
            page.get_by_role("button", name="提交评价").click()
            page.get_by_role("alert").wait_for()
            assert "请先在上面写下您的意见" in page.inner_text("main")
            assert page.get_by_label("把这条意见作为投诉处理").is_checked()
            assert responses(sqlite_engine) == 0
            page.get_by_label("您对我们产品的体验和改进建议（选填）").fill("洗车机刮花了<车漆>")
            page.screenshot(path=tmp_path / "complaint-form.png", full_page=True)
            page.get_by_role("button", name="提交评价").click()
            page.get_by_role("heading", name="感谢您的评价").wait_for()
            text = page.inner_text("main")
            page.screenshot(path=tmp_path / "complaint-thanks.png", full_page=True)
    finally:
        context.close()

    with session_scope(sqlite_engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        response = session.scalars(select(SurveyResponse)).one()
        assert (complaint.source, complaint.source_ref) == (
            ComplaintSource.SURVEY,
            f"survey:{response.id}",
        )
        assert (response.score, complaint.description) == (2, "洗车机刮花了<车漆>")
        assert f"您的意见已作为投诉受理，受理编号 {complaint.external_id}。" in text
    check_screenshots(
        tmp_path, ("complaint-form.png", "complaint-thanks.png"), keep_as="survey-answer"
    )
