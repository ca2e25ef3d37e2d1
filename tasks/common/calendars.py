"""Load business calendars from the database into the frozen values the pure rules take.

``calendar_days`` is the source at run time (``crm calendar sync`` fills it from the
``chinese_calendar`` package; people may edit it); nothing here reads the package.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_db.models import Branch, BusinessCalendar, CalendarDay, Region
from crm_db.session import session_scope, shared_engine
from tasks.rules.business_time import BusinessHours
from tasks.rules.calendar import WorkCalendar, calendar_warnings


class CalendarNotFoundError(LookupError):
    """No business calendar with that code or id: an SLA cannot be measured without it."""


def _work_calendar(session: Session, calendar: BusinessCalendar) -> WorkCalendar:
    days = dict(
        session.execute(
            select(CalendarDay.day, CalendarDay.is_working).where(
                CalendarDay.calendar_id == calendar.id
            )
        )
        .tuples()
        .all()  # a list: dict() would take a Result (it has keys()) for a mapping
    )
    return WorkCalendar.from_pattern(calendar.working_weekdays, days)


def _hours(session: Session, calendar: BusinessCalendar) -> BusinessHours:
    return BusinessHours(
        days=_work_calendar(session, calendar),
        zone=ZoneInfo(calendar.timezone),
        work_start=calendar.work_start,
        work_end=calendar.work_end,
        break_start=calendar.break_start,
        break_end=calendar.break_end,
        code=calendar.code,
    )


def load_work_calendar(session: Session, code: str = "CN") -> WorkCalendar:
    """The named calendar's working days; without such a calendar, Monday to Friday with no
    holidays (day-level rules such as revisit planning can still run on a bare database)."""
    calendar = session.scalar(select(BusinessCalendar).where(BusinessCalendar.code == code))
    return WorkCalendar() if calendar is None else _work_calendar(session, calendar)


def load_branch_work_calendar(session: Session, branch_id: int | None) -> WorkCalendar:
    """The working days of a branch: its region's calendar (``regions.calendar_id``), else the
    default calendar (``load_work_calendar``), as for a customer without a branch."""
    calendar = (
        None
        if branch_id is None
        else session.scalar(
            select(BusinessCalendar)
            .join(Region, Region.calendar_id == BusinessCalendar.id)
            .join(Branch, Branch.region_id == Region.id)
            .where(Branch.id == branch_id)
        )
    )
    return load_work_calendar(session) if calendar is None else _work_calendar(session, calendar)


def load_business_hours(session: Session, code: str = "CN") -> BusinessHours:
    """The calendar ``code``: hours, break, zone, weekly pattern, holidays and make-up days."""
    calendar = session.scalar(select(BusinessCalendar).where(BusinessCalendar.code == code))
    if calendar is None:
        raise CalendarNotFoundError(f"no business calendar with code {code!r}")
    return _hours(session, calendar)


def load_business_hours_by_id(session: Session, calendar_id: int | None) -> BusinessHours:
    """The calendar an SLA policy or region points at; ``None`` (no calendar) is 24x7."""
    if calendar_id is None:
        return BusinessHours.twenty_four_seven()
    calendar = session.get(BusinessCalendar, calendar_id)
    if calendar is None:
        raise CalendarNotFoundError(f"no business calendar with id {calendar_id}")
    return _hours(session, calendar)


def load_all_business_hours(session: Session) -> dict[int, BusinessHours]:
    """Every calendar's hours by id, in two statements whatever their number (the calendars,
    then all their days): for a run that measures complaints on several calendars."""
    calendars = list(session.scalars(select(BusinessCalendar).order_by(BusinessCalendar.id)))
    days: dict[int, dict[date, bool]] = {c.id: {} for c in calendars}
    for calendar_id, day, is_working in session.execute(
        select(CalendarDay.calendar_id, CalendarDay.day, CalendarDay.is_working)
    ).tuples():
        if calendar_id in days:
            days[calendar_id][day] = is_working
    return {
        c.id: BusinessHours(
            days=WorkCalendar.from_pattern(c.working_weekdays, days[c.id]),
            zone=ZoneInfo(c.timezone),
            work_start=c.work_start,
            work_end=c.work_end,
            break_start=c.break_start,
            break_end=c.break_end,
            code=c.code,
        )
        for c in calendars
    }


def last_covered_days(session: Session) -> dict[str, date | None]:
    """Per calendar code, the last day whose public holidays are known (``covered_through``),
    for every calendar that has public holidays at all (fed by a package, or given a coverage
    date by hand); ``None`` means such a calendar was never filled."""
    rows = session.execute(
        select(BusinessCalendar.code, BusinessCalendar.covered_through)
        .where(
            or_(
                BusinessCalendar.holidays_from.is_not(None),
                BusinessCalendar.covered_through.is_not(None),
            )
        )
        .order_by(BusinessCalendar.code)
    ).tuples()
    return dict(rows.all())


def coverage_warnings(as_of: date) -> list[str]:
    """The warnings every flow's summary carries about the business calendars: one per calendar
    whose public holidays run out within 60 days of ``as_of`` (see ``coverage_warning``). Reads
    the shared engine's database (one small query)."""
    with session_scope(shared_engine()) as session:
        return calendar_warnings(as_of, last_covered_days(session))
