"""The reconciliation's policies from ``policy_settings`` (IO), as the values the rules take."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy.orm import Session

from crm_db.policy_defaults import (
    TARGETS_AWARD_TOP_PCT,
    TARGETS_CREDIT,
    TARGETS_CUTOFF_SHIFT,
    TARGETS_FLAG_HIGH_PCT,
    TARGETS_FLAG_LOW_PCT,
    TARGETS_PERIOD_RULE,
    TARGETS_SETTLEMENT_CUTOFF_DAY,
)
from tasks.common.policies import setting
from tasks.targets.actuals import CreditPolicy
from tasks.targets.rules.periods import CutoffShift, PeriodPolicy, PeriodRule
from tasks.targets.rules.reconcile import FlagPolicy


class TargetPolicyError(ValueError):
    """A target policy setting holds a value the rules do not know (names the key)."""


@dataclass(frozen=True)
class TargetPolicies:
    periods: PeriodPolicy
    flags: FlagPolicy
    credit: CreditPolicy
    award_top_pct: int = 10  # the quarterly award's share of the leaderboard


def load_target_policies(session: Session) -> TargetPolicies:
    rule, shift, credit = (
        setting(session, TARGETS_PERIOD_RULE),
        setting(session, TARGETS_CUTOFF_SHIFT),
        setting(session, TARGETS_CREDIT),
    )
    try:
        periods = PeriodPolicy(
            PeriodRule(rule), setting(session, TARGETS_SETTLEMENT_CUTOFF_DAY), CutoffShift(shift)
        )
        credit_policy = CreditPolicy(credit)
    except ValueError as exc:
        raise TargetPolicyError(
            f"policies {TARGETS_PERIOD_RULE.key}={rule!r}, {TARGETS_CUTOFF_SHIFT.key}={shift!r}, "
            f"{TARGETS_CREDIT.key}={credit!r}, {TARGETS_SETTLEMENT_CUTOFF_DAY.key}: {exc}"
        ) from None
    flags = FlagPolicy(
        Fraction(setting(session, TARGETS_FLAG_LOW_PCT), 100),
        Fraction(setting(session, TARGETS_FLAG_HIGH_PCT), 100),
    )
    award = setting(session, TARGETS_AWARD_TOP_PCT)
    if not 0 <= award <= 100:
        raise TargetPolicyError(f"policy {TARGETS_AWARD_TOP_PCT.key}={award}: must be 0 to 100")
    return TargetPolicies(periods, flags, credit_policy, award)
