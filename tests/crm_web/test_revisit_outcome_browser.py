"""The revisit-outcome link in a real headless Chromium, against a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine

from crm_db.enums import ContactOutcome, RevisitStatus
from crm_web.app import create_app
from tests.crm_web.browser import check_screenshots, launch_chromium, open_page
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.crm_web.live_server import live_server
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
    yield from launch_chromium()


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

    with (
        live_server(app) as base_url,
        open_page(browser, locale=locale, height=900, console=console) as page,
    ):
        response = page.goto(f"{base_url}/r/{token}")
        assert response is not None and response.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == heading
        assert "李四 <车队>" in page.locator("dl.facts").inner_text()
        # The inline stylesheets (base and page's own) are allowed by our CSP and applied.
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

    assert revisit_state(engine, row.revisit_id) == RevisitState(
        RevisitStatus.DONE, "completed", NOW, note
    )
    assert contacts(engine, row.revisit_id) == [(ContactOutcome.COMPLETED, row.assignee_id, note)]
    assert revisit_state(engine, bystander.revisit_id).status is RevisitStatus.OPEN
    assert not [line for line in console if "Content Security Policy" in line], console
    check_screenshots(
        tmp_path, ("form.png", "saved.png"), keep_as=f"revisit-{locale}-{engine.dialect.name}"
    )
