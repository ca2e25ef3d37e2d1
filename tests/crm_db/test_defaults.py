"""Default policies: inserted once, never overwriting an operator's edits; the CN calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from crm_db.calendar_sync import package_calendar
from crm_db.defaults import (
    POLICY_SETTING_DEFAULTS,
    PolicyValueError,
    ensure_default_policies,
    get_policy,
    read_setting,
)
from crm_db.enums import AbcClass, Severity
from crm_db.models import BusinessCalendar, CalendarDay, PolicySetting, RevisitPolicy, SlaPolicy
from crm_db.policy_defaults import (
    ABC_A_REVENUE_SHARE,
    CONTACT_CAP_DAYS,
    REVISIT_DEFAULTS,
    SETTINGS,
    VALUE_CURRENT_HIGH_REVENUE_FEN,
)
from tasks.classification.rules import AbcPolicy, ValuePolicy
from tasks.revisits.rules.planning import DEFAULT_CADENCES

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_first_call_inserts_every_default_and_second_inserts_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        first = ensure_default_policies(session, now=NOW)
        session.commit()
    expected_days = len(package_calendar().days)
    assert first == {
        "revisit_policies": 3,
        "business_calendars": 1,
        "calendar_days": expected_days,
        "sla_policies": 8,
        "survey_policies": 3,
        "policy_settings": len(POLICY_SETTING_DEFAULTS),
    }
    with Session(engine) as session:
        second = ensure_default_policies(session, now=NOW)
        session.commit()
        assert set(second.values()) == {0}
        assert _count(session, RevisitPolicy) == 3
        assert _count(session, SlaPolicy) == 8
        assert _count(session, CalendarDay) == expected_days
        assert _count(session, PolicySetting) == len(POLICY_SETTING_DEFAULTS)


def test_an_operators_edits_survive_and_only_missing_rows_come_back(engine: Engine) -> None:
    with Session(engine) as session:
        ensure_default_policies(session, now=NOW)
        session.commit()
    with Session(engine) as session:
        share = session.get(PolicySetting, "abc.a_revenue_share")
        assert share is not None
        share.value = 0.75
        policy_a = session.scalar(select(RevisitPolicy).where(RevisitPolicy.abc_class == "A"))
        assert policy_a is not None
        policy_a.cadence_days = 21
        critical = session.scalar(select(SlaPolicy).where(SlaPolicy.code == "critical"))
        assert critical is not None
        critical.first_response_minutes = 30
        national_day = session.scalar(
            select(CalendarDay).where(CalendarDay.day == date(2026, 10, 7))
        )
        assert national_day is not None
        national_day.is_working = True  # the company works that day
        gone = session.get(PolicySetting, "survey.fatigue_days")
        session.delete(gone)
        session.commit()
    with Session(engine) as session:
        added = ensure_default_policies(session, now=NOW + timedelta(days=1))
        session.commit()
        assert added["policy_settings"] == 1  # only the deleted one
        assert sum(added.values()) == 1
        assert get_policy(session, "abc.a_revenue_share", 0.8) == 0.75
        assert get_policy(session, "survey.fatigue_days", 0) == 90
        assert (
            session.scalar(select(RevisitPolicy.cadence_days).where(RevisitPolicy.abc_class == "A"))
            == 21
        )
        assert (
            session.scalar(
                select(SlaPolicy.first_response_minutes).where(SlaPolicy.code == "critical")
            )
            == 30
        )
        edited = session.scalar(select(CalendarDay).where(CalendarDay.day == date(2026, 10, 7)))
        assert edited is not None
        assert (edited.is_working, edited.source) == (True, "manual")  # kept, now owned by people


def test_documented_values(engine: Engine) -> None:
    with Session(engine) as session:
        ensure_default_policies(session, timezone="Asia/Shanghai", now=NOW)
        session.commit()
        cadences = {
            p.abc_class: (p.cadence_days, p.channel, p.overdue_after_days)
            for p in session.scalars(select(RevisitPolicy))
        }
        assert cadences == {
            AbcClass.A: (30, "visit", 7),
            AbcClass.B: (90, "phone", 7),
            AbcClass.C: (180, "email", 7),
        }
        calendar = session.scalar(select(BusinessCalendar).where(BusinessCalendar.code == "CN"))
        assert calendar is not None
        assert (calendar.timezone, calendar.working_weekdays) == ("Asia/Shanghai", "12345")
        assert (calendar.work_start.hour, calendar.work_end.hour) == (9, 18)
        assert (calendar.break_start, calendar.break_end) == (None, None)  # 540 min a day
        assert calendar.holidays_from == "chinese_calendar"
        assert calendar.covered_through == date(package_calendar().last_year, 12, 31)
        sla = {
            (p.severity, p.abc_class): (
                p.first_response_minutes,
                p.resolution_minutes,
                p.calendar_id,
            )
            for p in session.scalars(select(SlaPolicy))
        }
        # First response in clock minutes (24 h at most), resolution in business minutes of
        # the branch's calendar (no override on the row).
        assert sla[(Severity.CRITICAL, None)] == (120, 540, None)
        assert sla[(Severity.HIGH, None)] == (240, 1080, None)
        assert sla[(Severity.NORMAL, None)] == (1440, 1620, None)
        assert sla[(Severity.LOW, None)] == (1440, 2700, None)
        executive = {
            (p.severity, p.abc_class)
            for p in session.scalars(select(SlaPolicy).where(SlaPolicy.notify_executive_at_intake))
        }
        assert executive == {
            (Severity.CRITICAL, None),
            (Severity.CRITICAL, AbcClass.A),
            (Severity.HIGH, AbcClass.A),
        }
        for severity in Severity:  # A-class rows halve the general ones
            general, a_class = sla[(severity, None)], sla[(severity, AbcClass.A)]
            assert a_class[0] * 2 == general[0] and a_class[1] * 2 == general[1]
        for key, default in POLICY_SETTING_DEFAULTS.items():
            row = session.get(PolicySetting, key)
            assert row is not None and row.value == default.default and row.description
            assert row.updated_at == NOW
        assert get_policy(session, "targets.settlement_cutoff_day", 0) == 25
        assert get_policy(session, "contact.cap_days", 0) == 7


# The State Council notices, day by day: (holidays, make-up working days).
OFFICIAL = {
    2025: (
        ["01-01"]
        + [f"01-{d}" for d in range(28, 32)]
        + [f"02-0{d}" for d in range(1, 5)]
        + ["04-04", "04-05", "04-06"]
        + [f"05-0{d}" for d in range(1, 6)]
        + ["05-31", "06-01", "06-02"]
        + [f"10-0{d}" for d in range(1, 9)],
        ["01-26", "02-08", "04-27", "09-28", "10-11"],
    ),
    2026: (
        ["01-01", "01-02", "01-03"]
        + [f"02-{d}" for d in range(15, 24)]
        + ["04-04", "04-05", "04-06"]
        + [f"05-0{d}" for d in range(1, 6)]
        + ["06-19", "06-20", "06-21"]
        + ["09-25", "09-26", "09-27"]
        + [f"10-0{d}" for d in range(1, 8)],
        ["01-04", "02-14", "02-28", "05-09", "09-20", "10-10"],
    ),
}


def test_the_package_matches_the_official_schedules() -> None:
    """The chinese_calendar package, checked against the State Council notices we know."""
    days = {day: (d.is_working, d.name) for day, d in package_calendar().days.items()}
    for year, (holidays, workdays) in OFFICIAL.items():
        expected = {date.fromisoformat(f"{year}-{d}"): False for d in holidays}
        expected |= {date.fromisoformat(f"{year}-{d}"): True for d in workdays}
        actual = {day: working for day, (working, _) in days.items() if day.year == year}
        assert actual == expected
    # Totals as announced: 2025 Spring Festival 8 days, 2026 Spring Festival 9 days.
    assert sum(1 for d, (w, n) in days.items() if d.year == 2025 and n == "春节") == 8
    assert sum(1 for d, (w, n) in days.items() if d.year == 2026 and n == "春节") == 9
    # Every make-up working day is a weekend day; 2026-10-10 is a Saturday.
    assert all(d.isoweekday() >= 6 for d, (working, _) in days.items() if working)
    assert days[date(2026, 10, 10)] == (True, "国庆节调休上班")


def test_get_policy_types(engine: Engine) -> None:
    with Session(engine) as session:
        assert get_policy(session, "missing.key", 12) == 12
        session.add(PolicySetting(key="x.int", value=7, description="", updated_at=NOW))
        session.add(PolicySetting(key="x.frac", value=0.8, description="", updated_at=NOW))
        session.add(PolicySetting(key="x.flag", value=True, description="", updated_at=NOW))
        session.add(PolicySetting(key="x.text", value="CN", description="", updated_at=NOW))
        session.flush()
        assert get_policy(session, "x.int", 0) == 7
        assert isinstance(get_policy(session, "x.int", 0.0), float)
        assert get_policy(session, "x.frac", 0.5) == 0.8
        assert get_policy(session, "x.flag", False) is True
        assert get_policy(session, "x.text", "") == "CN"
        with pytest.raises(PolicyValueError, match="x.frac"):
            get_policy(session, "x.frac", 0)  # 0.8 is not an int: never silently truncated
        with pytest.raises(PolicyValueError):
            get_policy(session, "x.text", 1.0)
        with pytest.raises(PolicyValueError):
            get_policy(session, "x.int", True)


def test_a_retired_setting_is_deleted_so_nobody_edits_a_key_nothing_reads(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(
            PolicySetting(
                key="revisit.overdue_after_days", value=9, description="old", updated_at=NOW
            )
        )
        session.commit()
    with Session(engine) as session:
        ensure_default_policies(session, now=NOW)
        session.commit()
        assert session.get(PolicySetting, "revisit.overdue_after_days") is None
        assert "revisit.overdue_after_days" not in POLICY_SETTING_DEFAULTS


def test_read_setting_takes_the_type_of_the_default_and_names_a_wrong_value(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        ensure_default_policies(session, now=NOW)
        assert read_setting(session, CONTACT_CAP_DAYS) == 7
        assert read_setting(session, ABC_A_REVENUE_SHARE) == pytest.approx(0.8)
        cap = session.get(PolicySetting, CONTACT_CAP_DAYS.key)
        assert cap is not None
        cap.value = 3.5
        session.flush()
        with pytest.raises(PolicyValueError, match="contact.cap_days"):
            read_setting(session, CONTACT_CAP_DAYS)


def test_every_setting_key_is_unique_and_its_default_matches_the_rules_defaults() -> None:
    """Each default is defined once: the rules' dataclass defaults are the settings' ones."""
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    assert AbcPolicy().a_revenue_share == ABC_A_REVENUE_SHARE.default
    assert ValuePolicy().current_high_revenue_fen == VALUE_CURRENT_HIGH_REVENUE_FEN.default
    assert {abc: c.cadence_days for abc, c in DEFAULT_CADENCES.items()} == {
        d.abc_class: d.cadence_days for d in REVISIT_DEFAULTS
    }
