"""Target policies from policy_settings: defaults, a settlement policy, and a bad value named."""

from __future__ import annotations

from fractions import Fraction

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from crm_db.models import PolicySetting
from tasks.targets.actuals import CreditPolicy
from tasks.targets.policies import TargetPolicyError, load_target_policies
from tasks.targets.rules.periods import CutoffShift, PeriodRule


def test_defaults_then_settings_then_a_bad_value(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        policies = load_target_policies(session)
        assert policies.periods.rule is PeriodRule.CALENDAR
        assert policies.credit is CreditPolicy.HOME
        assert policies.flags.behind_below == Fraction(4, 5)
        assert policies.award_top_pct == 10
        for key, value in (
            ("targets.period_rule", "settlement"),
            ("targets.cutoff_shift", "later"),
            ("targets.credit", "station"),
            ("targets.settlement_cutoff_day", 20),
            ("targets.flag_high_pct", 150),
        ):
            session.add(PolicySetting(key=key, value=value))
        session.flush()
        policies = load_target_policies(session)
        assert (policies.periods.rule, policies.periods.shift, policies.periods.cutoff_day) == (
            PeriodRule.SETTLEMENT,
            CutoffShift.LATER,
            20,
        )
        assert policies.credit is CreditPolicy.STATION
        assert policies.flags.star_above == Fraction(3, 2)
        session.get(PolicySetting, "targets.period_rule").value = "fortnight"  # type: ignore[union-attr]
        session.flush()
        with pytest.raises(TargetPolicyError, match="targets.period_rule='fortnight'"):
            load_target_policies(session)


def test_an_award_share_outside_0_to_100_is_named(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session:
        session.add(PolicySetting(key="targets.award_top_pct", value=25))
        session.flush()
        assert load_target_policies(session).award_top_pct == 25
        session.get(PolicySetting, "targets.award_top_pct").value = 150  # type: ignore[union-attr]
        session.flush()
        with pytest.raises(TargetPolicyError, match="targets.award_top_pct=150"):
            load_target_policies(session)
