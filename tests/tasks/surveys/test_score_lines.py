"""The scores lines of the surveys artifact name regions as the other artifacts do (片区 name)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from crm_db.session import session_scope
from tasks.surveys.scores import store_scores
from tests.factories import make_org


def test_region_lines_show_the_region_name_in_code_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        second = make_org(session, code="R2")
        first = make_org(session, code="R1")
        second.region.name, first.region.name = "南区", "城区"
    lines = store_scores(
        engine,
        as_of=date(2026, 11, 23),
        now=datetime(2026, 11, 23, 2, tzinfo=UTC),
        timezone=ZoneInfo("Asia/Shanghai"),
        run_id=None,
        dry_run=True,
    )
    assert [line.label for line in lines] == [
        f"{group} 2026Q4 vs 2026Q3" for group in ("company", "region 城区", "region 南区")
    ]
    # No invitations yet: every figure says so rather than 0.
    assert {line.nps for line in lines} == {"no answers"}
