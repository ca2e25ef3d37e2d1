""" "Not solved" in a real headless Chromium against a real uvicorn server reopens the closed
complaint the care email asked about (every problem recorded), linked to the email and the
call it raised."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine, select

from crm_db.enums import ComplaintStatus, EventSource, Severity
from crm_db.models import CareFeedback, Complaint, ComplaintEvent
from crm_db.session import session_scope
from crm_web.app import create_app
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.rules.lifecycle import Transition
from tests.crm_web.browser import launch_chromium, open_page
from tests.crm_web.factories import NOW, Clock, web_settings
from tests.crm_web.live_server import live_server
from tests.crm_web.test_care_feedback import feedback_token
from tests.factories import CARE_EMAIL_SENT, make_care_email

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_not_solved_in_chromium_reopens_the_closed_complaint(
    engine: Engine, browser: Browser
) -> None:
    row = make_care_email(engine)
    received = CARE_EMAIL_SENT - timedelta(days=10)
    with session_scope(engine) as session:
        complaint_id = open_complaint(
            session,
            Intake("CP20260000042", row.customer_id, None, "充值到账", Severity.NORMAL, received),
        ).id
    for n, step in enumerate(
        (Transition.ACK, Transition.RESOLVE, Transition.VERIFY, Transition.CLOSE), start=1
    ):
        with session_scope(engine) as session:
            apply_event(
                session, complaint_id, step, received + timedelta(hours=n), None, EventSource.CLI
            )
    token = feedback_token(row.outbox_id)
    app = create_app(engine, web_settings(), clock=Clock(NOW))
    console: list[str] = []
    with (
        live_server(app) as base_url,
        open_page(browser, locale="zh-CN", height=900, console=console) as page,
    ):
        response = page.goto(f"{base_url}/f/{token}?answer=not_solved")
        assert response is not None and response.status == 200
        assert page.get_by_role("radio", name="还没有解决").is_checked()
        with session_scope(engine) as session:  # opening the page changes nothing
            stored = session.get(Complaint, complaint_id)
            assert stored is not None and stored.status is ComplaintStatus.CLOSED
        page.get_by_label("还有什么想告诉我们的吗？（选填）").fill("卡里余额还是少了50元")
        page.get_by_role("button", name="提交").click()
        page.get_by_role("heading", name="感谢您的回复").wait_for()

    with session_scope(engine) as session:
        stored = session.get(Complaint, complaint_id)
        assert stored is not None
        assert stored.status is ComplaintStatus.IN_PROGRESS and stored.reopened_count == 1
        feedback = session.scalars(select(CareFeedback)).one()
        reopen = session.scalars(
            select(ComplaintEvent).where(ComplaintEvent.to_status == ComplaintStatus.IN_PROGRESS)
        ).one()
        assert reopen.at == NOW and reopen.detail_key == f"care_email:{row.outbox_id}"
        assert f"call: revisit {feedback.follow_up_revisit_id}" in (reopen.note or "")
        assert "卡里余额还是少了50元" in (reopen.note or "")
