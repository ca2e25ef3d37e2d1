"""Regions (片区), branches/stations (油站), staff with their reporting line, business calendars."""

from __future__ import annotations

from datetime import date, time

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import StaffRole
from crm_db.models.base import Base, str_enum


class BusinessCalendar(Base):
    """Working hours and weekdays; exceptions (holidays, make-up workdays) in CalendarDay.

    Hours are local wall-clock times in ``timezone``; ``work_end`` 00:00 means midnight at the
    end of the day (a 24-hour day). The break is optional (both NULL: none). ``holidays_from``
    names where the public holidays come from (``chinese_calendar``: ``crm calendar sync`` keeps
    them up to date); ``covered_through`` is the last day whose holidays are known - past it
    every day follows the weekly pattern, which is why the healthcheck warns before it.
    """

    __tablename__ = "business_calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    work_start: Mapped[time] = mapped_column(Time, default=time(9, 0))
    work_end: Mapped[time] = mapped_column(Time, default=time(18, 0))
    break_start: Mapped[time | None] = mapped_column(Time)
    break_end: Mapped[time | None] = mapped_column(Time)
    # ISO weekdays that are normally working days, e.g. "12345" for Monday to Friday.
    working_weekdays: Mapped[str] = mapped_column(String(7), default="12345")
    holidays_from: Mapped[str | None] = mapped_column(String(40))
    covered_through: Mapped[date | None] = mapped_column(Date)


class CalendarDay(Base):
    """An exception to the weekly pattern: a public holiday, or a weekend made a workday (调休).

    ``source`` says who owns the row: ``chinese_calendar`` rows are written by the sync,
    ``manual`` rows by people (the default, so a hand-inserted row is protected). The sync
    never changes a row's ``is_working``: a ``chinese_calendar`` row edited by hand becomes
    ``manual`` at the next sync and is kept (see ``crm_db.calendar_sync``).
    """

    __tablename__ = "calendar_days"
    __table_args__ = (UniqueConstraint("calendar_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("business_calendars.id", ondelete="CASCADE")
    )
    day: Mapped[date] = mapped_column(Date)
    is_working: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(String(20), default="manual", server_default="manual")


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", use_alter=True, ondelete="SET NULL")
    )
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("business_calendars.id"))


class Branch(Base):
    __tablename__ = "branches"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", use_alter=True, ondelete="SET NULL")
    )


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    email_undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(40))  # shown to customers in care emails
    locale: Mapped[str] = mapped_column(String(10), default="zh-CN")
    role: Mapped[StaffRole] = mapped_column(str_enum(StaffRole, "role", 40))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"), index=True)
    # The escalation chain: each person's manager. Cycles are data errors the flows must survive.
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    left_on: Mapped[date | None] = mapped_column(Date)
    max_contacts: Mapped[int | None] = mapped_column(Integer)
