"""The weekly progress form in a real headless Chromium, phone-sized and without JavaScript,
against a real uvicorn server: the region manager opens Sunday's link, sees their stations'
progress against the pro-rated target, files the form, and later changes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine

from crm_web.app import create_app
from tests.crm_web.browser import check_screenshots, launch_chromium
from tests.crm_web.factories import Clock, web_settings
from tests.crm_web.live_server import live_server
from tests.tasks.surveys.answer_factories import KEY
from tests.tasks.targets.form_factories import SUNDAY_MORNING, WEEK, form_url, forms, make_week

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_a_region_manager_files_and_updates_the_form_on_a_phone(
    sqlite_engine: Engine, browser: Browser, tmp_path: Path
) -> None:
    week = make_week(sqlite_engine)
    app = create_app(sqlite_engine, web_settings(), clock=Clock(SUNDAY_MORNING))
    obstacles = "两家车队 <b>比价</b>\n希望单位卡优惠"
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    try:
        with live_server(app) as base_url:
            page = context.new_page()
            response = page.goto(form_url(week.north, KEY, base_url))
            assert response is not None and response.status == 200
            assert page.get_by_role("heading", level=1).inner_text() == (
                f"{week.north.name} 周反馈表 {WEEK}"
            )
            station = page.locator("section.member", has_text=week.north.branch_name)
            revenue = station.locator("tr", has_text="营业额（元）").inner_text()
            assert "9,000.00" in revenue and "4,000.00" in revenue and "225.0%" in revenue
            assert week.south.branch_name not in page.inner_text("main")
            main_box = page.locator("main").bounding_box()
            assert main_box is not None and main_box["width"] <= 390  # fits the phone
            page.get_by_label("本周联系的潜在客户数").fill("12")
            page.get_by_label("遇到的困难（选填）").fill(obstacles)
            page.screenshot(path=tmp_path / "form.png", full_page=True)
            assert forms(sqlite_engine) == []  # opening and filling changed nothing

            page.get_by_role("button", name="提交周反馈表").click()
            page.get_by_role("status").wait_for()
            assert "已提交" in page.get_by_role("status").inner_text()
            # What was typed comes back as text, tags and all, never as markup.
            assert page.get_by_label("遇到的困难（选填）").input_value() == obstacles
            assert page.locator("main b").count() == 0
            page.screenshot(path=tmp_path / "saved.png", full_page=True)

            page.get_by_label("本周联系的潜在客户数").fill("15")
            page.get_by_label("下周计划（选填）").fill("拜访物流园区三家车队")
            page.get_by_role("button", name="提交周反馈表").click()
            page.get_by_role("status").wait_for()
            assert "共提交 2 次" in page.inner_text("main")
    finally:
        context.close()

    (stored,) = forms(sqlite_engine)
    assert (stored.prospects_contacted, stored.obstacles, stored.next_week_plan) == (
        15,
        obstacles,
        "拜访物流园区三家车队",
    )
    assert (stored.submitted_by_id, stored.submissions) == (week.north.manager_id, 2)
    check_screenshots(tmp_path, ("form.png", "saved.png"), keep_as="weekly-form")
