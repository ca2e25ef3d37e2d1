"""``/w/{token}``, the region manager's weekly progress form, over plain HTTP against real
SQLite files and real PostgreSQL: GET shows the stored snapshot's figures of the link's region
only and writes nothing; POST stores the region's one form and a re-submission updates it; a
bad form comes back with its errors; every bad, expired, closed or outlived link gets the one
invalid-link page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from crm_core.signing import sign
from crm_db.enums import StaffRole
from crm_db.models import Region as RegionRow
from crm_db.session import session_scope
from crm_web.app import create_app
from tests.crm_web.factories import Clock, web_settings
from tests.factories import make_staff
from tests.tasks.surveys.answer_factories import KEY
from tests.tasks.targets.form_factories import (
    SUNDAY_MORNING,
    WEEK,
    Week,
    form_count,
    form_token,
    forms,
    make_week,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def clock() -> Clock:
    return Clock(SUNDAY_MORNING)


@pytest.fixture
def week_client(engine: Engine, clock: Clock) -> Iterator[tuple[TestClient, Week]]:
    week = make_week(engine)
    app = create_app(engine, web_settings(), clock=clock)
    with TestClient(app, base_url="https://crm.example.test") as client:
        yield client, week


def post(client: TestClient, token: str, fields: dict[str, str]) -> httpx.Response:
    response: httpx.Response = client.post(f"/w/{token}", content=urlencode(fields), headers=FORM)
    return response


def test_the_form_shows_its_region_figures_and_writes_nothing(
    engine: Engine, week_client: tuple[TestClient, Week]
) -> None:
    client, week = week_client
    page = client.get(f"/w/{form_token(week.north, KEY)}")
    assert page.status_code == 200
    html = page.text
    assert f"{week.north.name} 周反馈表 {WEEK}" in html
    assert week.north.branch_name in html
    # From the snapshot: 900,000 fen done against 2,300,000 pro-rated to 400,000 (4 of 23).
    assert "9,000.00" in html and "4,000.00" in html and "225.0%" in html
    assert week.south.name not in html and week.south.branch_name not in html
    assert 'name="prospects_contacted"' in html and 'name="next_week_plan"' in html
    assert client.head(f"/w/{form_token(week.north, KEY)}").status_code == 200
    assert form_count(engine) == 0


def test_posting_stores_and_a_resubmission_updates_the_one_form(
    engine: Engine, week_client: tuple[TestClient, Week], clock: Clock
) -> None:
    client, week = week_client
    token = form_token(week.north, KEY)
    first = post(
        client,
        token,
        {"prospects_contacted": "12", "obstacles": "<b>比价</b>", "next_week_plan": ""},
    )
    assert first.status_code == 200
    assert "已提交" in first.text
    assert "&lt;b&gt;比价&lt;/b&gt;" in first.text and "<b>比价" not in first.text
    (stored,) = forms(engine)
    assert (stored.week, stored.region_id, stored.snapshot_id) == (
        WEEK,
        week.north.region_id,
        week.snapshot_id,
    )
    assert (stored.prospects_contacted, stored.obstacles, stored.next_week_plan) == (
        12,
        "<b>比价</b>",
        None,
    )
    assert (stored.submitted_by_id, stored.submitted_at, stored.submissions) == (
        week.north.manager_id,
        SUNDAY_MORNING,
        1,
    )

    clock.advance(timedelta(hours=3))
    again = post(
        client, token, {"prospects_contacted": "15", "obstacles": "", "next_week_plan": "拜访车队"}
    )
    assert again.status_code == 200 and 'value="15"' in again.text
    (updated,) = forms(engine)
    assert updated.id == stored.id
    assert (updated.prospects_contacted, updated.obstacles, updated.next_week_plan) == (
        15,
        None,
        "拜访车队",
    )
    assert updated.first_submitted_at == SUNDAY_MORNING
    assert (updated.submitted_at, updated.submissions) == (clock.now, 2)
    # Opening it again shows what was submitted.
    shown = client.get(f"/w/{token}").text
    assert 'value="15"' in shown and "拜访车队</textarea>" in shown


def test_a_bad_form_comes_back_with_its_errors_and_writes_nothing(
    engine: Engine, week_client: tuple[TestClient, Week]
) -> None:
    client, week = week_client
    bad = post(
        client,
        form_token(week.north, KEY),
        {"prospects_contacted": "-3", "obstacles": "阻" * 2001, "next_week_plan": "<i>x</i>"},
    )
    assert bad.status_code == 400
    assert "潜在客户数请填写整数" in bad.text and "最多 2000 个字" in bad.text
    assert "&lt;i&gt;x&lt;/i&gt;</textarea>" in bad.text  # kept, escaped
    assert form_count(engine) == 0
    # The longest valid form - two texts of 2,000 Chinese characters - fits the body limit.
    full = {"prospects_contacted": "0", "obstacles": "阻" * 2000, "next_week_plan": "计" * 2000}
    assert post(client, form_token(week.north, KEY), full).status_code == 200
    assert form_count(engine) == 1


def test_every_bad_link_gets_the_same_invalid_link_page(
    engine: Engine, week_client: tuple[TestClient, Week], clock: Clock
) -> None:
    client, week = week_client
    reference = client.get("/w/not-a-token")
    assert reference.status_code == 404
    good = form_token(week.north, KEY)
    body, mac = good.split(".")
    bad_tokens = [
        f"{body}.{mac[:-2]}xx",  # tampered
        form_token(week.north, b"another-key-0123456789abcdef0123456"),
        sign(KEY, "revisit_list", {"region": week.north.region_id}, SUNDAY_MORNING),
        form_token(week.north, KEY, week="2026-W99"),  # not a week
        form_token(week.north, KEY, week="2026-W50"),  # no snapshot for that week yet
    ]
    for token in bad_tokens:
        for response in (
            client.get(f"/w/{token}"),
            post(client, token, {"prospects_contacted": "1"}),
        ):
            assert (response.status_code, response.text) == (404, reference.text)

    # A new region manager: the old one's link is dead.
    with session_scope(engine) as session:
        successor = make_staff(session, StaffRole.REGION_MANAGER, region_id=week.north.region_id)
        session.execute(
            update(RegionRow)
            .where(RegionRow.id == week.north.region_id)
            .values(manager_id=successor.id)
        )
    response = post(client, good, {"prospects_contacted": "1"})
    assert (response.status_code, response.text) == (404, reference.text)

    # The week closes at midnight after its Sunday (Shanghai): link and form are dead.
    south = form_token(week.south, KEY)
    clock.now = SUNDAY_MORNING.replace(hour=15, minute=59)
    assert client.get(f"/w/{south}").status_code == 200
    clock.now = SUNDAY_MORNING.replace(hour=16)
    for response in (client.get(f"/w/{south}"), post(client, south, {"prospects_contacted": "1"})):
        assert (response.status_code, response.text) == (404, reference.text)
    assert form_count(engine) == 0
