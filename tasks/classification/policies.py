"""IO: the classification policies (Pareto shares, value-matrix thresholds) from
``policy_settings``, through the shared typed reader."""

from __future__ import annotations

from sqlalchemy.orm import Session

from crm_db.policy_defaults import (
    ABC_A_MAX_CUSTOMER_SHARE,
    ABC_A_REVENUE_SHARE,
    ABC_C_REVENUE_TAIL_SHARE,
    VALUE_CURRENT_HIGH_REVENUE_FEN,
    VALUE_GROWTH_HIGH_RATIO,
)
from tasks.classification.rules import AbcPolicy, ValuePolicy
from tasks.common.policies import setting


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
