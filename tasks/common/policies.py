"""The one typed policy reader: rule policies from the database (``policy_settings``,
``revisit_policies``), as the plain frozen values the pure rules take (calendars:
``tasks.common.calendars``).

Every default is defined once, in ``crm_db.policy_defaults``; a row in the database overrides
it, and a value of the wrong type is an error naming the key (``PolicyValueError``), never
silently truncated. IO only.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.defaults import read_setting
from crm_db.enums import AbcClass
from crm_db.models import RevisitPolicy
from crm_db.policy_defaults import (
    ABC_A_MAX_CUSTOMER_SHARE,
    ABC_A_REVENUE_SHARE,
    ABC_C_REVENUE_TAIL_SHARE,
    CONTACT_CAP_DAYS,
    VALUE_CURRENT_HIGH_REVENUE_FEN,
    VALUE_GROWTH_HIGH_RATIO,
    Setting,
    T,
)
from tasks.classification.rules import AbcPolicy, ValuePolicy
from tasks.revisits.rules.planning import DEFAULT_CADENCES, Cadence


def setting(session: Session, setting: Setting[T]) -> T:
    """A ``policy_settings`` value as its default's type (``crm_db.policy_defaults``)."""
    return read_setting(session, setting)


def abc_policy(session: Session) -> AbcPolicy:
    return AbcPolicy(
        a_revenue_share=setting(session, ABC_A_REVENUE_SHARE),
        a_max_customer_share=setting(session, ABC_A_MAX_CUSTOMER_SHARE),
        c_revenue_tail_share=setting(session, ABC_C_REVENUE_TAIL_SHARE),
    )


def value_policy(session: Session) -> ValuePolicy:
    return ValuePolicy(
        current_high_revenue_fen=setting(session, VALUE_CURRENT_HIGH_REVENUE_FEN),
        growth_high_ratio=setting(session, VALUE_GROWTH_HIGH_RATIO),
    )


def contact_cap_days(session: Session) -> int:
    """The contact cap: no proactive contact within this many days of the last one."""
    return setting(session, CONTACT_CAP_DAYS)


def cadences(session: Session) -> dict[AbcClass, Cadence]:
    """Active revisit policies by class; a class without a row keeps the documented default."""
    rows = session.scalars(select(RevisitPolicy).where(RevisitPolicy.active.is_(True))).all()
    result = dict(DEFAULT_CADENCES)
    for row in rows:
        result[row.abc_class] = Cadence(
            row.abc_class, row.cadence_days, row.channel, row.overdue_after_days
        )
    return result
