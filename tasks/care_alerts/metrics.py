"""IO: the detractor loop measured per period - of the survey alerts raised in it, how many were
followed up within the deadline (their urgent revisit completed by ``follow_up_due``) and how
many customers were told the result (``result_queued_at``). For the surveys flow's artifact and
monthly report; one streamed query, the rule (``followed_up_in_time``) decides per row.
(The customers' next score belongs to the survey tables: the surveys report joins it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.models import CareAlert, Revisit
from tasks.care_alerts.rules import SURVEY_KINDS, followed_up_in_time, share_pct


@dataclass(frozen=True)
class LoopFigures:
    alerts: int
    followed_up_in_time: int
    told: int

    @property
    def followed_up_pct(self) -> float | None:
        return share_pct(self.followed_up_in_time, self.alerts)

    @property
    def told_pct(self) -> float | None:
        return share_pct(self.told, self.alerts)


def loop_figures(session: Session, *, start: date, end: date, timezone: ZoneInfo) -> LoopFigures:
    """The survey alerts raised from ``start`` to ``end`` (inclusive, by ``as_of``)."""
    rows = session.execute(
        select(CareAlert.follow_up_due, CareAlert.result_queued_at, Revisit.completed_at)
        .outerjoin(Revisit, Revisit.id == CareAlert.revisit_id)
        .where(
            CareAlert.kind.in_(sorted(SURVEY_KINDS)),
            CareAlert.as_of >= start,
            CareAlert.as_of <= end,
        )
        .execution_options(yield_per=5000)
    )
    alerts = in_time = told = 0
    for due, result_queued_at, completed_at in rows:
        alerts += 1
        completed_on = None if completed_at is None else completed_at.astimezone(timezone).date()
        in_time += followed_up_in_time(completed_on, due)
        told += result_queued_at is not None
    return LoopFigures(alerts, in_time, told)


__all__ = ["LoopFigures", "loop_figures"]
