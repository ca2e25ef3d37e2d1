"""The documented default policies, inserted once and never overwritten.

``ensure_default_policies`` adds only the rows that are missing (by natural key), so it is safe
to run on every install or upgrade: an operator's edits to a row always survive.

Revisit policies (定期回访)

=====  ========  =======  ==================
class  cadence   channel  overdue after
=====  ========  =======  ==================
A      30 days   visit    7 days after due
B      90 days   phone    7 days after due
C      180 days  email    7 days after due
=====  ========  =======  ==================

Survey policies (满意度调查): the periodic NPS survey per class, A quarterly, B half-yearly, C
yearly, each with ``enabled`` (switch a class off by editing its row). The survey windows are
``policy_settings`` (``survey.*``): post-complaint CSAT 3 working days after the resolution,
one reminder after 5 days, expiry after 14 days, nobody invited twice within 90 days.

SLA policies. First response in clock minutes: within 24 hours for every severity (海尔: 出现问题
24小时内答复), shorter for critical and for A-class customers. Resolution in business minutes of
the branch's calendar (its region's calendar, else ``CN``: 09:00-18:00, Mon-Fri, public
holidays off, make-up workdays on; one working day is 540 minutes). Rows for A-class customers
halve the targets (the seeds: important customers are answered first). Critical complaints and
A-class customers' high ones reach senior management at intake (``notify_executive_at_intake``).

========  =====  ==============  ==================================  ===============
severity  class  first response  resolution (business minutes)       executive at
                 (clock)                                             intake
========  =====  ==============  ==================================  ===============
critical  any    120 (2 h)       540 (1 working day)                 yes
critical  A      60 (1 h)        270 (half a working day)            yes
high      any    240 (4 h)       1080 (2 working days)               no
high      A      120 (2 h)       540 (1 working day)                 yes
normal    any    1440 (24 h)     1620 (3 working days)               no
normal    A      720 (12 h)      810 (1.5 working days)              no
low       any    1440 (24 h)     2700 (5 working days)               no
low       A      720 (12 h)      1350 (2.5 working days)             no
========  =====  ==============  ==================================  ===============

Escalation thresholds keep the model defaults: warning at 80 % of a target, the assignee at
100 %, branch manager at 100 %, region manager at 150 %, senior management at 200 %.

Business calendar ``CN``: Asia/Shanghai, 09:00-18:00 without a break (so one working day is the
540 minutes the SLA rows above count on; add a break and those read differently), Monday to
Friday, with the public holidays and make-up working days (调休) of every year the installed
``chinese_calendar`` package knows (``crm_db.calendar_sync``; nothing typed by hand here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Final, TypeVar, cast

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_db import calendar_sync
from crm_db.enums import AbcClass, Severity
from crm_db.models import (
    BusinessCalendar,
    PolicySetting,
    RevisitPolicy,
    SlaPolicy,
    SurveyPolicy,
)
from crm_db.policy_defaults import (
    RETIRED_SETTINGS,
    REVISIT_DEFAULTS,
    SETTINGS,
    SURVEY_DEFAULTS,
    Setting,
)
from crm_db.types import utcnow

CALENDAR_CODE: Final = "CN"
WORKDAY_MINUTES: Final = 9 * 60  # 09:00-18:00


@dataclass(frozen=True)
class SlaDefault:
    code: str
    severity: Severity
    abc_class: AbcClass | None
    first_response_minutes: int  # clock minutes
    resolution_minutes: int  # business minutes of the branch's calendar
    notify_executive_at_intake: bool


DAY_MINUTES: Final = 24 * 60

SLA_DEFAULTS: Final[tuple[SlaDefault, ...]] = (
    SlaDefault("critical", Severity.CRITICAL, None, 120, WORKDAY_MINUTES, True),
    SlaDefault("critical-a", Severity.CRITICAL, AbcClass.A, 60, WORKDAY_MINUTES // 2, True),
    SlaDefault("high", Severity.HIGH, None, 240, 2 * WORKDAY_MINUTES, False),
    SlaDefault("high-a", Severity.HIGH, AbcClass.A, 120, WORKDAY_MINUTES, True),
    SlaDefault("normal", Severity.NORMAL, None, DAY_MINUTES, 3 * WORKDAY_MINUTES, False),
    SlaDefault(
        "normal-a", Severity.NORMAL, AbcClass.A, DAY_MINUTES // 2, 3 * WORKDAY_MINUTES // 2, False
    ),
    SlaDefault("low", Severity.LOW, None, DAY_MINUTES, 5 * WORKDAY_MINUTES, False),
    SlaDefault(
        "low-a", Severity.LOW, AbcClass.A, DAY_MINUTES // 2, 5 * WORKDAY_MINUTES // 2, False
    ),
)


# The settings' keys, defaults and descriptions (crm_db.policy_defaults), by key.
POLICY_SETTING_DEFAULTS: Final[Mapping[str, Setting[Any]]] = {s.key: s for s in SETTINGS}


def _insert_revisit_policies(session: Session) -> int:
    existing = set(session.scalars(select(RevisitPolicy.abc_class)))
    missing = [d for d in REVISIT_DEFAULTS if d.abc_class not in existing]
    session.add_all(
        RevisitPolicy(
            abc_class=d.abc_class,
            cadence_days=d.cadence_days,
            channel=d.channel,
            overdue_after_days=d.overdue_after_days,
            active=True,
        )
        for d in missing
    )
    return len(missing)


def _insert_survey_policies(session: Session) -> int:
    existing = set(session.scalars(select(SurveyPolicy.abc_class)))
    missing = [d for d in SURVEY_DEFAULTS if d.abc_class not in existing]
    session.add_all(
        SurveyPolicy(abc_class=d.abc_class, period=d.period, enabled=d.enabled) for d in missing
    )
    return len(missing)


def default_calendar(timezone: str) -> BusinessCalendar:
    """A new (unsaved) CN calendar row with the documented hours; its days come from a sync."""
    return BusinessCalendar(
        code=CALENDAR_CODE,
        name="中国大陆工作日历 (China mainland working days)",
        timezone=timezone,
        work_start=time(9, 0),
        work_end=time(18, 0),
        break_start=None,
        break_end=None,
        working_weekdays="12345",
        holidays_from=calendar_sync.PACKAGE,
    )


def ensure_calendar(session: Session, timezone: str) -> tuple[BusinessCalendar, int, int]:
    """The CN calendar (created if missing, then synced from chinese_calendar) and how many
    calendar and day rows were added. ``crm calendar sync`` calls it too, so a production
    database that never ran the demo seed gets its calendar from ``crm db upgrade`` + a sync."""
    calendar = session.scalar(
        select(BusinessCalendar).where(BusinessCalendar.code == CALENDAR_CODE)
    )
    created = 0
    if calendar is None:
        calendar = default_calendar(timezone)
        session.add(calendar)
        session.flush()
        created = 1
    # The days come from the chinese_calendar package; an operator's edit of a day is kept
    # (the sync never flips is_working, see crm_db.calendar_sync).
    added = 0
    if calendar.holidays_from == calendar_sync.PACKAGE:
        report = calendar_sync.sync_calendar(session, calendar, calendar_sync.package_calendar())
        added = report.inserted
    return calendar, created, added


def _insert_sla_policies(session: Session) -> int:
    rows = session.execute(select(SlaPolicy.code, SlaPolicy.severity, SlaPolicy.abc_class)).all()
    codes = {code for code, _, _ in rows}
    keys = {(severity, abc_class) for _, severity, abc_class in rows}
    added = 0
    for d in SLA_DEFAULTS:
        if d.code in codes or (d.severity, d.abc_class) in keys:
            continue
        session.add(
            SlaPolicy(
                code=d.code,
                severity=d.severity,
                abc_class=d.abc_class,
                first_response_minutes=d.first_response_minutes,
                resolution_minutes=d.resolution_minutes,
                calendar_id=None,  # the branch's calendar
                warn_pct=80,
                assignee_pct=100,
                branch_pct=100,
                region_pct=150,
                executive_pct=200,
                notify_executive_at_intake=d.notify_executive_at_intake,
            )
        )
        added += 1
    return added


def _insert_settings(session: Session, now: datetime) -> int:
    # Retired keys go: nothing reads them, so an edit to one would silently change nothing.
    session.execute(delete(PolicySetting).where(PolicySetting.key.in_(RETIRED_SETTINGS)))
    existing = set(session.scalars(select(PolicySetting.key)))
    missing = [key for key in POLICY_SETTING_DEFAULTS if key not in existing]
    for key in missing:
        default = POLICY_SETTING_DEFAULTS[key]
        session.add(
            PolicySetting(
                key=key, value=default.default, description=default.description, updated_at=now
            )
        )
    return len(missing)


def ensure_default_policies(
    session: Session, *, timezone: str = "Asia/Shanghai", now: datetime | None = None
) -> dict[str, int]:
    """Insert the documented default policy rows that are missing; returns rows added per table.

    ``now`` stamps ``policy_settings.updated_at`` (the demo seed passes a fixed time so that its
    output is reproducible). The caller owns the transaction; this only flushes.
    """
    stamp = now or utcnow()
    counts = {"revisit_policies": _insert_revisit_policies(session)}
    calendar, calendars_added, days_added = ensure_calendar(session, timezone)
    counts["business_calendars"] = calendars_added
    counts["calendar_days"] = days_added
    counts["sla_policies"] = _insert_sla_policies(session)
    counts["survey_policies"] = _insert_survey_policies(session)
    counts["policy_settings"] = _insert_settings(session, stamp)
    session.flush()
    return counts


T = TypeVar("T", bool, int, float, str)


class PolicyValueError(ValueError):
    """A policy setting holds a value of the wrong type for what the code reads it as."""


def _coerce(key: str, value: Any, default: T) -> T:
    kind = type(default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    result: bool | int | float | str
    if kind is bool and isinstance(value, bool):
        result = value
    elif kind is int and number and value == int(value):
        result = int(value)
    elif kind is float and number:
        result = float(value)
    elif kind is str and isinstance(value, str):
        result = value
    else:
        raise PolicyValueError(
            f"policy setting {key!r} holds {value!r}, expected a {kind.__name__}"
        )
    return cast(T, result)


def read_setting(session: Session, setting: Setting[T]) -> T:
    """The database's value of ``setting``, as the type of its default (see ``get_policy``)."""
    return get_policy(session, setting.key, setting.default)


def get_policy(session: Session, key: str, default: T) -> T:
    """The setting ``key`` as the type of ``default``; ``default`` when the row is missing or
    NULL. A value of the wrong type (e.g. 0.8 where an int is read) raises ``PolicyValueError``
    rather than being silently truncated."""
    row = session.get(PolicySetting, key)
    if row is None or row.value is None:
        return default
    return _coerce(key, row.value, default)
