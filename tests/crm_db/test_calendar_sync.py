"""The chinese_calendar sync: inserts the package's days, is idempotent, never flips a day a
person set. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db import migrate
from crm_db.calendar_sync import PackageCalendar, package_calendar, sync_calendars
from crm_db.defaults import default_calendar
from crm_db.models import BusinessCalendar, CalendarDay
from crm_db.session import make_engine

PACKAGE = package_calendar()


def _calendar(session: Session, code: str = "CN") -> BusinessCalendar:
    calendar = default_calendar("Asia/Shanghai")
    calendar.code = code
    session.add(calendar)
    session.flush()
    return calendar


def _days(session: Session) -> dict[date, tuple[bool, str, str]]:
    return {
        row.day: (row.is_working, row.name, row.source)
        for row in session.scalars(select(CalendarDay))
    }


def test_package_covers_the_demo_years_and_ends_on_a_year_end() -> None:
    assert PACKAGE.first_year <= 2025 and PACKAGE.last_year >= 2026
    assert PACKAGE.last_day == date(PACKAGE.last_year, 12, 31)
    assert PACKAGE.days[date(2026, 10, 1)].is_working is False
    assert PACKAGE.days[date(2026, 10, 10)].name == "国庆节调休上班"


def test_first_sync_inserts_every_day_and_a_second_changes_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        _calendar(session)
        first = sync_calendars(session)
        session.commit()
    assert len(first) == 1
    report = first[0]
    assert report.inserted == len(PACKAGE.days) > 700
    assert (report.updated, report.kept, report.conflicts) == (0, 0, ())
    assert report.covered_through == PACKAGE.last_day and report.covered_through_moved
    with Session(engine) as session:
        rows = _days(session)
        assert rows[date(2026, 2, 14)] == (True, "春节调休上班", "chinese_calendar")
        assert rows[date(2026, 2, 17)] == (False, "春节", "chinese_calendar")
        before = rows
        second = sync_calendars(session)[0]
        session.commit()
        assert not second.changed
        assert (second.inserted, second.updated, second.kept) == (0, 0, 0)
        assert second.unchanged == len(PACKAGE.days)
    with Session(engine) as session:
        assert _days(session) == before


def test_hand_edits_survive_every_resync(engine: Engine) -> None:
    with Session(engine) as session:
        calendar = _calendar(session)
        sync_calendars(session)
        session.commit()
        cid = calendar.id
    with Session(engine) as session:
        # An operator works on National Day with a plain UPDATE, forgetting the source column...
        session.execute(
            text("UPDATE calendar_days SET is_working = :w WHERE day = :d"),
            {"w": True, "d": date(2026, 10, 7)},
        )
        # ...adds a company day off (the column default makes it manual)...
        session.execute(
            text(
                "INSERT INTO calendar_days (calendar_id, day, is_working, name) "
                "VALUES (:c, :d, :w, :n)"
            ),
            {"c": cid, "d": date(2026, 12, 24), "w": False, "n": "公司年会"},
        )
        # ...and renames a package day, which the package puts back.
        session.execute(
            text("UPDATE calendar_days SET name = 'x' WHERE day = :d"), {"d": date(2026, 1, 1)}
        )
        session.commit()
    with Session(engine) as session:
        report = sync_calendars(session)[0]
        session.commit()
        assert report.inserted == 0
        assert report.updated == 1  # the name
        assert report.newly_manual == (date(2026, 10, 7),)
        assert report.conflicts == (date(2026, 10, 7), date(2026, 12, 24))
        assert report.kept == 2
        rows = _days(session)
        assert rows[date(2026, 10, 7)] == (True, "国庆节", "manual")
        assert rows[date(2026, 12, 24)] == (False, "公司年会", "manual")
        assert rows[date(2026, 1, 1)][1] == "元旦"
    with Session(engine) as session:
        again = sync_calendars(session)[0]
        session.commit()
        assert not again.changed and again.kept == 2
        assert _days(session)[date(2026, 10, 7)] == (True, "国庆节", "manual")


def test_a_package_correction_is_reported_not_applied(engine: Engine) -> None:
    """A newer package that no longer lists a day: the database keeps it (it is the source at
    run time) and the sync names the day, so an operator can decide."""
    with Session(engine) as session:
        _calendar(session)
        sync_calendars(session)
        session.commit()
    days = dict(PACKAGE.days)
    del days[date(2026, 10, 7)]
    corrected = PackageCalendar("9.9.9", PACKAGE.first_year, PACKAGE.last_year, days)
    with Session(engine) as session:
        report = sync_calendars(session, package=corrected)[0]
        session.commit()
        assert report.conflicts == (date(2026, 10, 7),) and report.package_version == "9.9.9"
        assert _days(session)[date(2026, 10, 7)][0] is False


def test_next_years_package_extends_coverage_and_keeps_hand_added_days(engine: Engine) -> None:
    """A year added by hand before the package knew it: the package's days for it arrive, the
    hand-added ones stay."""
    first_year, last = PACKAGE.first_year, PACKAGE.last_year
    older = {d: v for d, v in PACKAGE.days.items() if d.year < last}
    with Session(engine) as session:
        calendar = _calendar(session)
        sync_calendars(session, package=PackageCalendar("old", first_year, last - 1, older))
        session.add(
            CalendarDay(
                calendar_id=calendar.id, day=date(last, 1, 1), is_working=False, name="元旦"
            )
        )
        session.commit()
        assert calendar.covered_through == date(last - 1, 12, 31)
    with Session(engine) as session:
        report = sync_calendars(session)[0]
        session.commit()
        assert report.inserted == len(PACKAGE.days) - len(older) - 1
        assert report.kept == 1 and report.conflicts == ()
        assert report.covered_through == date(last, 12, 31)
        assert _days(session)[date(last, 1, 1)] == (False, "元旦", "manual")


def test_dry_run_writes_nothing_and_only_package_fed_calendars_sync(engine: Engine) -> None:
    with Session(engine) as session:
        _calendar(session)
        other = _calendar(session, code="DE")
        other.holidays_from = None
        session.commit()
    with Session(engine) as session:
        report = sync_calendars(session, dry_run=True)
        session.commit()
        assert [r.calendar for r in report] == ["CN"]
        assert report[0].inserted == len(PACKAGE.days)
        assert session.scalar(select(func.count()).select_from(CalendarDay)) == 0
        assert (
            session.scalar(
                select(BusinessCalendar.covered_through).where(BusinessCalendar.code == "CN")
            )
            is None
        )


def test_migration_marks_existing_cn_days_as_package_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        migrate.upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO business_calendars (id, code, name, timezone, work_start, "
                    "work_end, working_weekdays) VALUES "
                    "(1, 'CN', 'cn', 'Asia/Shanghai', '09:00:00', '18:00:00', '12345'), "
                    "(2, 'XX', 'xx', 'Europe/Berlin', '08:00:00', '17:00:00', '12345')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO calendar_days (calendar_id, day, is_working, name) VALUES "
                    "(1, '2026-10-07', 1, '国庆节'), (2, '2026-12-24', 0, 'Heiligabend')"
                )
            )
        migrate.upgrade(engine)
        with Session(engine) as session:
            cn = session.scalar(select(BusinessCalendar).where(BusinessCalendar.code == "CN"))
            assert cn is not None and cn.holidays_from == "chinese_calendar"
            assert (cn.break_start, cn.covered_through) == (None, None)
            assert {d: s for d, (_, _, s) in _days(session).items()} == {
                date(2026, 10, 7): "chinese_calendar",
                date(2026, 12, 24): "manual",
            }
            # The operator's old edit (National Day worked) is kept by the first sync.
            report = sync_calendars(session)[0]
            session.commit()
            assert report.newly_manual == (date(2026, 10, 7),)
            assert _days(session)[date(2026, 10, 7)][0] is True
    finally:
        engine.dispose()


def test_cli_sync(sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    reset_settings_cache()
    from crm_cli.main import app

    runner = CliRunner()
    dry = runner.invoke(app, ["calendar", "sync", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "calendar CN would be created" in dry.output
    assert f"days inserted {len(PACKAGE.days)}," in dry.output
    assert "dry run: nothing written" in dry.output
    with Session(sqlite_engine) as session:
        assert session.scalar(select(func.count()).select_from(BusinessCalendar)) == 0
    first = runner.invoke(app, ["calendar", "sync"])
    assert first.exit_code == 0, first.output
    assert (
        f"chinese_calendar {PACKAGE.version} covers {PACKAGE.first_year}-{PACKAGE.last_year}; "
        f"covered through {PACKAGE.last_day.isoformat()}"
    ) in first.output
    assert f"days inserted {len(PACKAGE.days)}, updated 0" in first.output
    second = runner.invoke(app, ["calendar", "sync"])
    assert second.exit_code == 0, second.output
    assert f"days inserted 0, updated 0, unchanged {len(PACKAGE.days)}" in second.output
    assert "nothing changed" in second.output
    with Session(sqlite_engine) as session:
        session.execute(text("UPDATE calendar_days SET is_working = 1 WHERE day = '2026-10-07'"))
        session.commit()
    edited = runner.invoke(app, ["calendar", "sync"])
    assert "1 days were edited by hand and are now manual: 2026-10-07" in edited.output
    unknown = runner.invoke(app, ["calendar", "sync", "--calendar", "NOPE"])
    assert unknown.exit_code == 1 and "with code NOPE" in unknown.output


def test_replace_keeps_package_calendar_frozen() -> None:
    with pytest.raises(AttributeError):
        PACKAGE.version = "x"  # type: ignore[misc]
    assert replace(PACKAGE, version="y").days is PACKAGE.days
