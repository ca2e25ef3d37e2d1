"""IO: the revisit policies by class (``revisit_policies``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.enums import AbcClass
from crm_db.models import RevisitPolicy
from crm_db.policy_defaults import (
    REVISIT_CALLS_PER_DAY,
    REVISIT_SPREAD_WORKING_DAYS,
    REVISIT_VISITS_PER_DAY,
)
from tasks.common.policies import setting
from tasks.revisits.rules.capacity import Capacity
from tasks.revisits.rules.planning import DEFAULT_CADENCES, Cadence


def cadences(session: Session) -> dict[AbcClass, Cadence]:
    """Active revisit policies by class; a class without a row keeps the documented default."""
    rows = session.scalars(select(RevisitPolicy).where(RevisitPolicy.active.is_(True))).all()
    result = dict(DEFAULT_CADENCES)
    for row in rows:
        result[row.abc_class] = Cadence(
            row.abc_class, row.cadence_days, row.channel, row.overdue_after_days
        )
    return result


def capacity(session: Session) -> Capacity:
    """Each account manager's daily capacity (``revisit.capacity.*``); a value below 1 is an
    error naming the key."""
    return Capacity(
        visits_per_day=setting(session, REVISIT_VISITS_PER_DAY),
        calls_per_day=setting(session, REVISIT_CALLS_PER_DAY),
        window_working_days=setting(session, REVISIT_SPREAD_WORKING_DAYS),
    )
