"""The revisit-outcome link in a real headless Chromium, against a real uvicorn server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, sync_playwright
from sqlalchemy import Engine

from crm_db.enums import ContactOutcome, RevisitStatus
from crm_web.app import create_app
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.crm_web.live_server import live_server
from tests.crm_web.test_browser import CHROMIUM, CHROMIUM_ARGS, PNG_SIGNATURE
from tests.crm_web.test_revisit_outcome import (
    RevisitState,
    contacts,
    make_revisit,
    outcome_token,
    revisit_state,
)

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
    ("locale", "heading", "completed", "notes_label", "button", "saved"),
    [
        ("en", "Record the revisit outcome", "Completed", "Notes (optional)", "Save outcome",
         "Outcome saved"),
        ("zh-CN", "记录回访结果", "已完成回访", "备注（选填）", "保存结果", "回访结果已保存"),
    ],
    ids=["en", "zh-CN"],
)  # fmt: skip
def test_record_an_outcome_in_chromium(
    engine: Engine,
    browser: Browser,
    tmp_path: Path,
    locale: str,
    heading: str,
    completed: str,
    notes_label: str,
    button: str,
    saved: str,
) -> None:
    row = make_revisit(engine, staff_locale=locale, customer_name="李四 <车队>")
    bystander = make_revisit(engine, staff_locale=locale)
    token = outcome_token(row.revisit_id, row.assignee_id)
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    note = "换了新卡 <b>ok</b>\n下月再访"
    console: list[str] = []

    with live_server(app) as base_url:
        context = browser.new_context(locale=locale, viewport={"width": 800, "height": 900})
        page = context.new_page()

        def record(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", record)
        response = page.goto(f"{base_url}/r/{token}")
        assert response is not None and response.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == heading
        assert "李四 <车队>" in page.locator("dl.facts").inner_text()
        # The inline stylesheets are allowed by our CSP and really applied (base and page's own).
        background = page.get_by_role("button", name=button).evaluate(
            "b => getComputedStyle(b).backgroundColor"
        )
        assert background == "rgb(194, 65, 12)"
        assert page.locator("dl.facts").evaluate("d => getComputedStyle(d).display") == "grid"
        # Nothing chosen yet: the browser refuses to submit the form without an outcome.
        page.get_by_role("button", name=button).click()
        assert page.url == f"{base_url}/r/{token}"
        assert page.get_by_role("radio", name=completed).evaluate("r => !r.validity.valid")
        assert contacts(engine, row.revisit_id) == []

        page.get_by_role("radio", name=completed).check()
        page.get_by_label(notes_label).fill(note)
        page.screenshot(path=tmp_path / "form.png", full_page=True)
        # Opening and filling the page changed nothing.
        assert revisit_state(engine, row.revisit_id).status is RevisitStatus.OPEN

        page.get_by_role("button", name=button).click()
        page.get_by_role("heading", name=saved).wait_for()
        assert note.replace("\n", "") in page.locator("p.notes").inner_text().replace("\n", "")
        page.screenshot(path=tmp_path / "saved.png", full_page=True)
        context.close()

    assert revisit_state(engine, row.revisit_id) == RevisitState(
        RevisitStatus.DONE, "completed", NOW, note
    )
    assert contacts(engine, row.revisit_id) == [(ContactOutcome.COMPLETED, row.assignee_id, note)]
    assert revisit_state(engine, bystander.revisit_id).status is RevisitStatus.OPEN
    assert not [line for line in console if "Content Security Policy" in line], console
    for name in ("form.png", "saved.png"):
        image = (tmp_path / name).read_bytes()
        assert image.startswith(PNG_SIGNATURE) and len(image) > 5_000, name
    screenshot_dir = os.environ.get("CRM_WEB_SCREENSHOT_DIR")
    if screenshot_dir:  # to look at the pages by eye
        for name in ("form.png", "saved.png"):
            target = Path(screenshot_dir) / f"revisit-{locale}-{engine.dialect.name}-{name}"
            target.write_bytes((tmp_path / name).read_bytes())
