"""The unsubscribe link in a real headless Chromium, against a real uvicorn server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, sync_playwright
from sqlalchemy import Engine

from crm_web.app import create_app
from tests.crm_web.factories import (
    NOW,
    Clock,
    make_customer,
    unsubscribe_token,
    unsubscribed_at,
    web_settings,
)
from tests.crm_web.live_server import live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install -y chromium); never `playwright install`"
        )
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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

    with live_server(app) as base_url:
        context = browser.new_context(locale=locale, viewport={"width": 800, "height": 600})
        page = context.new_page()

        def record(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", record)
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
        context.close()

    assert unsubscribed_at(engine, customer) == NOW
    assert unsubscribed_at(engine, bystander) is None
    assert not [line for line in console if "Content Security Policy" in line], console
    for name in ("confirm.png", "done.png"):
        image = (tmp_path / name).read_bytes()
        assert image.startswith(PNG_SIGNATURE) and len(image) > 5_000, name
    screenshot_dir = os.environ.get("CRM_WEB_SCREENSHOT_DIR")
    if screenshot_dir:  # to look at the pages by eye
        for name in ("confirm.png", "done.png"):
            target = Path(screenshot_dir) / f"{locale}-{engine.dialect.name}-{name}"
            target.write_bytes((tmp_path / name).read_bytes())
