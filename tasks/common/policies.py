"""The one typed policy reader: rule policies from the database (``policy_settings``,
``revisit_policies``), as the plain frozen values the pure rules take. A flow's own policies
are read by its package (``tasks/<flow>/policies.py``) through ``setting``; calendars by
``tasks.common.calendars``.

Every default is defined once, in ``crm_db.policy_defaults``; a row in the database overrides
it, and a value of the wrong type is an error naming the key (``PolicyValueError``), never
silently truncated. IO only.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from crm_db.defaults import read_setting
from crm_db.policy_defaults import (
    CONTACT_CAP_DAYS,
    Setting,
    T,
)


def setting(session: Session, setting: Setting[T]) -> T:
    """A ``policy_settings`` value as its default's type (``crm_db.policy_defaults``)."""
    return read_setting(session, setting)


def contact_cap_days(session: Session) -> int:
    """The contact cap: no proactive contact within this many days of the last one."""
    return setting(session, CONTACT_CAP_DAYS)
