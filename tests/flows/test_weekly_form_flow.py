"""The 周反馈表 end to end on both backends, in real Prefect runs: Sunday's weekly
reconciliation queues each region manager's signed form link (once, even with resend); the
north manager files the form through that link on crm web; Monday's weekly_form_rollup queues
the marketing admin's roll-up naming the south region's missing form, once; a week that has
not closed yet is not rolled up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select

from crm_core.settings import reset_settings_cache
from crm_db.enums import StaffRole
from crm_db.models import OutboxMessage
from crm_db.session import dispose_shared_engines, session_scope
from crm_web.app import create_app
from flows.registry import FLOWS
from flows.target_reconciliation import target_reconciliation
from flows.weekly_form_rollup import weekly_form_rollup
from tasks.mail.render import render_email
from tests.crm_web.factories import Clock, web_settings
from tests.factories import make_staff
from tests.tasks.targets.form_factories import SUNDAY, SUNDAY_MORNING, WEEK, forms, make_regions

SECRET = "test-secret-key-0123456789abcdef0123"
MONDAY = date(2026, 12, 7)


@pytest.fixture
def crm_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", SECRET)
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def _outbox(engine: Engine, kind: str) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        ).all()
        session.expunge_all()
        return list(rows)


def test_sunday_links_forms_and_monday_rollup_once(crm_db: Engine) -> None:
    assert FLOWS["weekly_form_rollup"] is weekly_form_rollup
    north, south = make_regions(crm_db)
    with session_scope(crm_db) as session:
        admin_id = make_staff(session, StaffRole.MARKETING_ADMIN, locale="en").id

    sunday = target_reconciliation(as_of=SUNDAY, kind="weekly")
    assert sunday["counts"]["reports_queued"] == 3 + 2  # reports, and the two form links
    links = _outbox(crm_db, "weekly_form")
    assert {m.staff_id: m.idempotency_key for m in links} == {
        r.manager_id: f"weekly_form:{WEEK}:region:{r.region_id}:staff:{r.manager_id}"
        for r in (north, south)
    }
    north_link = next(m for m in links if m.staff_id == north.manager_id)
    rendered = render_email(north_link.kind, north_link.locale, north_link.context)
    assert north_link.context["form_url"] in rendered.html and north.name in rendered.subject
    assert south.name not in rendered.html + rendered.text
    again = target_reconciliation(as_of=SUNDAY, kind="weekly", resend=True)
    assert again["counts"]["revision"] == 2
    assert len(_outbox(crm_db, "weekly_form")) == 2  # the link went once

    # The north manager files the form through the emailed link; south files nothing.
    app = create_app(
        crm_db, web_settings(secret_key=SecretStr(SECRET)), clock=Clock(SUNDAY_MORNING)
    )
    with TestClient(app, base_url="https://crm.example.test") as client:
        filed = client.post(
            urlsplit(north_link.context["form_url"]).path,
            content=urlencode(
                {"prospects_contacted": "7", "obstacles": "车队 <比价>", "next_week_plan": ""}
            ),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert filed.status_code == 200
    (form,) = forms(crm_db)
    assert (form.region_id, form.prospects_contacted) == (north.region_id, 7)
    assert form.snapshot_id == again["counts"]["snapshot_id"]  # the re-run's revision

    monday = weekly_form_rollup(as_of=MONDAY)
    assert monday["counts"] == {
        "regions": 2,
        "forms_submitted": 1,
        "forms_missing": 1,
        "recipients": 1,
        "rollups_queued": 1,
        "rollups_already_queued": 0,
    }
    (rollup,) = _outbox(crm_db, "weekly_rollup")
    assert (rollup.staff_id, rollup.idempotency_key) == (
        admin_id,
        f"weekly_rollup:{WEEK}:staff:{admin_id}",
    )
    assert rollup.context["missing"] == [
        {"region_name": south.name, "manager_name": south.manager_name}
    ]
    text = render_email(rollup.kind, rollup.locale, rollup.context)
    assert f"not filed: {south.name}" in text.subject
    assert "车队 &lt;比价&gt;" in text.html and "车队 <比价>" in text.text
    # Figures from Sunday's latest snapshot: north's pace 225 %, south has no target.
    paces = {r["region_name"]: r["revenue_pace_pct"] for r in rollup.context["regions"]}
    assert paces == {north.name: 225.0, south.name: None}
    assert sum(r["submitted"] for r in rollup.context["regions"]) == 1

    rerun = weekly_form_rollup(as_of=MONDAY)
    assert (rerun["counts"]["rollups_queued"], rerun["counts"]["rollups_already_queued"]) == (0, 1)
    assert len(_outbox(crm_db, "weekly_rollup")) == 1
    # A week still open by the clock is not rolled up.
    early = weekly_form_rollup(as_of=date(2099, 1, 5))
    assert early["counts"]["rollups_queued"] == 0
    assert any("has not closed yet" in w for w in early["warnings"])
