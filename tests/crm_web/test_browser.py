"""The unsubscribe link in a real headless Chromium, against a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine

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

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


@pytest.mark.parametrize(
    ("locale", "heading", "button", "done"),
    [
        ("en", "Stop our emails?", "Unsubscribe", "You are unsubscribed"),
        ("zh-CN", "确定不再接收我们的邮件吗？", "确认退订", "您已成功退订"),
    ],
)
def test_unsubscribe_in_chromium(
    engine: Engine,
    browser: Browser,
    tmp_path: Path,
    locale: str,
    heading: str,
    button: str,
    done: str,
) -> None:
    customer = make_customer(engine, locale=locale, email="li.si@example.com")
    bystander = make_customer(engine)
    clock = Clock(NOW)
    token = unsubscribe_token(customer, issued_at=NOW)
    app = create_app(engine, web_settings(), clock=clock)
    console: list[str] = []

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=600, console=console) as page,
    ):
        response = page.goto(f"{base_url}/u/{token}")
        assert response is not None and response.status == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert page.get_by_role("heading", level=1).inner_text() == heading
        assert "l***@ex***" in page.locator("main").inner_text()
        # The inline stylesheet is allowed by our CSP and really applied.
        background = page.get_by_role("button", name=button).evaluate(
            "b => getComputedStyle(b).backgroundColor"
        )
        assert background == "rgb(194, 65, 12)"
        page.screenshot(path=tmp_path / "confirm.png", full_page=True)
        # Opening the page (and whatever else Chromium fetched with it) changed nothing.
        assert unsubscribed_at(engine, customer) is None

        page.get_by_role("button", name=button).click()
        page.get_by_role("heading", name=done).wait_for()
        assert "2026-11-23" in page.locator("main").inner_text()
        page.screenshot(path=tmp_path / "done.png", full_page=True)

    assert unsubscribed_at(engine, customer) == NOW
    assert unsubscribed_at(engine, bystander) is None
    assert not [line for line in console if "Content Security Policy" in line], console
    check_screenshots(
        tmp_path, ("confirm.png", "done.png"), keep_as=f"{locale}-{engine.dialect.name}"
    )
