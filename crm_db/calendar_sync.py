"""Public holidays and make-up working days (调休) from the ``chinese_calendar`` package.

The package carries the State Council's schedule for every year it knows (it needs a release
each year); ``sync_calendars`` writes it into ``calendar_days`` of every calendar whose
``holidays_from`` is ``chinese_calendar``. The database stays the source at run time: flows read
``calendar_days``, never the package, so an operator's edit there is what counts.

How an edit survives a re-sync - the sync never changes a day's ``is_working``:

- a day the package knows and the table lacks is inserted (``source = 'chinese_calendar'``);
- a ``chinese_calendar`` row that agrees with the package keeps agreeing (only a changed name
  is refreshed);
- a ``chinese_calendar`` row that disagrees was edited by hand (or the package corrected a
  year): it is kept as it is and becomes ``manual``, and the sync lists it as a conflict;
- a ``manual`` row (an edited one, or one inserted by hand: ``manual`` is the column default)
  is never written.

To take the package's value for a conflicting day, delete the row and sync again. A second sync
right after the first changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from typing import Final

import chinese_calendar
from chinese_calendar.constants import Holiday
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from crm_db.models import BusinessCalendar, CalendarDay

PACKAGE: Final = "chinese_calendar"
MANUAL: Final = "manual"
DISTRIBUTION: Final = "chinesecalendar"  # the package's name on PyPI


@dataclass(frozen=True)
class PackageDay:
    is_working: bool
    name: str


@dataclass(frozen=True)
class PackageCalendar:
    """What the installed package knows: every exception day of the years it covers."""

    version: str
    first_year: int
    last_year: int
    days: Mapping[date, PackageDay]

    @property
    def first_day(self) -> date:
        return date(self.first_year, 1, 1)

    @property
    def last_day(self) -> date:
        return date(self.last_year, 12, 31)


def _chinese_name(english: str) -> str:
    for holiday in Holiday:
        if holiday.value == english:
            return str(holiday.chinese)
    return english


def package_calendar() -> PackageCalendar:
    """The installed ``chinese_calendar``'s days, with Chinese names as the notices print them
    (a make-up working day is "<holiday>调休上班"). Weekend days inside a holiday are listed too."""
    holidays: Mapping[date, str] = chinese_calendar.holidays
    workdays: Mapping[date, str] = chinese_calendar.workdays
    days = {day: PackageDay(False, _chinese_name(name)) for day, name in holidays.items()}
    days |= {
        day: PackageDay(True, f"{_chinese_name(name)}调休上班") for day, name in workdays.items()
    }
    years = [day.year for day in holidays]
    return PackageCalendar(version(DISTRIBUTION), min(years), max(years), days)


@dataclass(frozen=True)
class SyncReport:
    """What one calendar's sync did (or, in a dry run, would do)."""

    calendar: str
    package_version: str
    first_year: int
    last_year: int
    covered_through: date
    inserted: int = 0
    updated: int = 0  # a package row's name refreshed
    unchanged: int = 0  # package rows already as the package has them
    kept: int = 0  # manual rows, never written (conflicts included)
    conflicts: tuple[date, ...] = ()  # days where the database differs from the package
    newly_manual: tuple[date, ...] = ()  # package rows found edited, made manual by this sync
    covered_through_moved: bool = False

    @property
    def changed(self) -> bool:
        """Whether the sync wrote (or, dry, would write) anything."""
        return bool(
            self.inserted or self.updated or self.newly_manual or self.covered_through_moved
        )


def _weekday_verdict(calendar: BusinessCalendar, day: date) -> bool:
    return str(day.isoweekday()) in calendar.working_weekdays


def sync_calendar(
    session: Session,
    calendar: BusinessCalendar,
    package: PackageCalendar,
    *,
    dry_run: bool = False,
) -> SyncReport:
    """Bring one calendar's days of the package's years in line with the package (see the
    module docstring for what is never overwritten). The caller owns the transaction."""
    rows = {
        row.day: row
        for row in session.scalars(
            select(CalendarDay).where(
                CalendarDay.calendar_id == calendar.id,
                CalendarDay.day >= package.first_day,
                CalendarDay.day <= package.last_day,
            )
        )
    }
    new_rows: list[dict[str, object]] = []
    updated = unchanged = kept = 0
    conflicts: list[date] = []
    newly_manual: list[CalendarDay] = []
    for day, known in sorted(package.days.items()):
        row = rows.get(day)
        if row is None:
            new_rows.append(
                {
                    "calendar_id": calendar.id,
                    "day": day,
                    "is_working": known.is_working,
                    "name": known.name,
                    "source": PACKAGE,
                }
            )
            continue
        if row.source != PACKAGE or row.is_working != known.is_working:
            kept += 1
            if row.is_working != known.is_working:
                conflicts.append(day)
                if row.source == PACKAGE:
                    newly_manual.append(row)
        elif row.name != known.name:
            updated += 1
            if not dry_run:
                row.name = known.name
        else:
            unchanged += 1
    # Rows the package does not list (a correction removed a day, or a person added one): the
    # package's verdict for them is the weekly pattern.
    for day, row in sorted(rows.items()):
        if day in package.days:
            continue
        verdict = _weekday_verdict(calendar, day)
        if row.source != PACKAGE or row.is_working != verdict:
            kept += 1
            if row.is_working != verdict:
                conflicts.append(day)
                if row.source == PACKAGE:
                    newly_manual.append(row)
        else:
            unchanged += 1
    through = max(calendar.covered_through or package.last_day, package.last_day)
    moved = through != calendar.covered_through
    if not dry_run:
        for row in newly_manual:
            row.source = MANUAL
        if new_rows:
            session.execute(insert(CalendarDay), new_rows)
        if moved:
            calendar.covered_through = through
        session.flush()
    return SyncReport(
        calendar=calendar.code,
        package_version=package.version,
        first_year=package.first_year,
        last_year=package.last_year,
        covered_through=through,
        inserted=len(new_rows),
        updated=updated,
        unchanged=unchanged,
        kept=kept,
        conflicts=tuple(sorted(conflicts)),
        covered_through_moved=moved,
        newly_manual=tuple(sorted(row.day for row in newly_manual)),
    )


def synced_calendars(session: Session, code: str | None = None) -> list[BusinessCalendar]:
    """The calendars fed by the package (``holidays_from = 'chinese_calendar'``), by code."""
    query = select(BusinessCalendar).where(BusinessCalendar.holidays_from == PACKAGE)
    if code is not None:
        query = query.where(BusinessCalendar.code == code)
    return list(session.scalars(query.order_by(BusinessCalendar.code)))


def sync_calendars(
    session: Session,
    *,
    code: str | None = None,
    dry_run: bool = False,
    package: PackageCalendar | None = None,
) -> list[SyncReport]:
    """Sync every package-fed calendar (or the one named ``code``); the caller commits."""
    source = package or package_calendar()
    return [
        sync_calendar(session, calendar, source, dry_run=dry_run)
        for calendar in synced_calendars(session, code)
    ]
