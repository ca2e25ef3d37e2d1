"""Loading calendars from the database (SQLite and PostgreSQL) into the pure rules' values."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from crm_db.calendar_sync import package_calendar
from crm_db.defaults import ensure_default_policies
from crm_db.models import BusinessCalendar
from tasks.common.calendars import (
    CalendarNotFoundError,
    last_covered_days,
    load_business_hours,
    load_business_hours_by_id,
)
from tasks.rules.business_time import add_business_minutes, working_minutes_on

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_loads_the_default_calendar_with_hours_zone_and_package_days(engine: Engine) -> None:
    with Session(engine) as session:
        ensure_default_policies(session)
        session.commit()
        hours = load_business_hours(session, "CN")
    assert (hours.code, str(hours.zone)) == ("CN", "Asia/Shanghai")
    assert (hours.work_start, hours.work_end, hours.break_start) == (time(9), time(18), None)
    assert working_minutes_on(date(2026, 11, 23), hours) == 540  # the SLA defaults' working day
    assert not hours.days.is_working_day(date(2026, 10, 1))
    assert hours.days.is_working_day(date(2026, 10, 10))  # make-up Saturday
    start = datetime(2026, 9, 30, 17, tzinfo=SHANGHAI)
    assert add_business_minutes(start, 120, hours) == datetime(2026, 10, 8, 10, tzinfo=SHANGHAI)


def test_a_region_calendar_with_its_own_zone_and_break(engine: Engine) -> None:
    with Session(engine) as session:
        berlin = BusinessCalendar(
            code="DE",
            name="Berlin office",
            timezone="Europe/Berlin",
            work_start=time(8),
            work_end=time(17),
            break_start=time(12),
            break_end=time(12, 30),
            working_weekdays="12345",
        )
        session.add(berlin)
        session.commit()
        by_code = load_business_hours(session, "DE")
        by_id = load_business_hours_by_id(session, berlin.id)
        assert by_id.code == by_code.code == "DE"
        assert str(by_code.zone) == "Europe/Berlin"
        assert working_minutes_on(date(2026, 11, 23), by_code) == 510
        assert last_covered_days(session) == {}  # no public holidays tracked for it
        with pytest.raises(CalendarNotFoundError, match="NOPE"):
            load_business_hours(session, "NOPE")
        with pytest.raises(CalendarNotFoundError):
            load_business_hours_by_id(session, 424242)
    clock = load_business_hours_by_id(Session(engine), None)
    assert working_minutes_on(date(2026, 3, 29), clock) == 24 * 60


def test_last_covered_day_per_calendar(engine: Engine) -> None:
    with Session(engine) as session:
        ensure_default_policies(session)
        session.add(
            BusinessCalendar(
                code="HK", name="hand-kept", timezone="Asia/Hong_Kong", holidays_from="manual"
            )
        )
        session.commit()
        assert last_covered_days(session) == {
            "CN": date(package_calendar().last_year, 12, 31),
            "HK": None,
        }
