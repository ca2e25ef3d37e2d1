"""IO: the survey policies - the periodic wave per class (``survey_policies``) and the survey
windows (``policy_settings`` ``survey.*``) - as the ``SurveyRules`` the pure rules take."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.models import SurveyPolicy
from crm_db.policy_defaults import (
    SURVEY_DEFAULTS,
    SURVEY_EXPIRY_DAYS,
    SURVEY_FATIGUE_DAYS,
    SURVEY_POST_COMPLAINT_DELAY_DAYS,
    SURVEY_POST_COMPLAINT_WINDOW_DAYS,
    SURVEY_REMINDER_DAYS,
)
from tasks.common.policies import setting
from tasks.surveys.rules.invitations import SurveyRules


def survey_rules(session: Session) -> SurveyRules:
    """The rules from the database; a class without a row keeps its documented default, a row
    with ``enabled`` false switches the class off. A value that cannot work raises
    ``PolicyError`` naming the setting."""
    periods = {d.abc_class: d.period for d in SURVEY_DEFAULTS if d.enabled}
    for row in session.scalars(select(SurveyPolicy)):
        if row.enabled:
            periods[row.abc_class] = row.period
        else:
            periods.pop(row.abc_class, None)
    return SurveyRules(
        periods=periods,
        post_complaint_delay_days=setting(session, SURVEY_POST_COMPLAINT_DELAY_DAYS),
        post_complaint_window_days=setting(session, SURVEY_POST_COMPLAINT_WINDOW_DAYS),
        reminder_days=setting(session, SURVEY_REMINDER_DAYS),
        expiry_days=setting(session, SURVEY_EXPIRY_DAYS),
        fatigue_days=setting(session, SURVEY_FATIGUE_DAYS),
    )
