"""Load rule policies from the database (``policy_settings``, ``revisit_policies``, calendars).

The rules' documented defaults live with the rules; a row in ``policy_settings`` overrides one.
IO only: returns plain frozen values that the pure rules take.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.enums import AbcClass
from crm_db.models import BusinessCalendar, CalendarDay, PolicySetting, RevisitPolicy
from tasks.rules.calendar import WorkCalendar
from tasks.rules.classification import AbcPolicy, ValuePolicy
from tasks.rules.revisits import DEFAULT_CADENCES, Cadence


def setting(session: Session, key: str, default: float) -> float:
    value = session.get(PolicySetting, key)
    if value is None or value.value is None:
        return default
    return float(value.value)


def abc_policy(session: Session) -> AbcPolicy:
    base = AbcPolicy()
    return AbcPolicy(
        a_revenue_share=setting(session, "abc.a_revenue_share", base.a_revenue_share),
        a_max_customer_share=setting(
            session, "abc.a_max_customer_share", base.a_max_customer_share
        ),
        c_revenue_tail_share=setting(
            session, "abc.c_revenue_tail_share", base.c_revenue_tail_share
        ),
    )


def value_policy(session: Session) -> ValuePolicy:
    base = ValuePolicy()
    return ValuePolicy(
        current_high_revenue_fen=int(
            setting(session, "value.current_high_revenue_fen", base.current_high_revenue_fen)
        ),
        growth_high_ratio=setting(session, "value.growth_high_ratio", base.growth_high_ratio),
    )


def cadences(session: Session) -> dict[AbcClass, Cadence]:
    """Active revisit policies by class; a class without a row keeps the documented default."""
    rows = session.scalars(select(RevisitPolicy).where(RevisitPolicy.active.is_(True))).all()
    result = dict(DEFAULT_CADENCES)
    for row in rows:
        result[row.abc_class] = Cadence(
            row.abc_class, row.cadence_days, row.channel, row.overdue_after_days
        )
    return result


def work_calendar(session: Session, code: str = "CN") -> WorkCalendar:
    """The named business calendar; without one, Monday to Friday with no holidays."""
    calendar = session.scalar(select(BusinessCalendar).where(BusinessCalendar.code == code))
    if calendar is None:
        return WorkCalendar()
    days: dict[date, bool] = {
        day: working
        for day, working in session.execute(
            select(CalendarDay.day, CalendarDay.is_working).where(
                CalendarDay.calendar_id == calendar.id
            )
        ).tuples()
    }
    return WorkCalendar.from_pattern(calendar.working_weekdays, days)
