"""The detractor loop's measure (pure): followed up within the deadline, told the result, the
next score; every share ``None`` (not 0) without anything to count; impossible counts refused."""

from __future__ import annotations

from datetime import date

import pytest

from crm_db.enums import SurveyKind
from tasks.surveys.rules.loop import (
    LoopCase,
    LoopTally,
    NextAnswer,
    case_tally,
    loop_scores,
    recovered,
    tally,
)

DUE = date(2026, 11, 25)


def test_follow_up_counts_only_a_completion_by_the_deadline() -> None:
    assert case_tally(LoopCase(DUE, DUE, told=False)).followed_up == 1
    assert case_tally(LoopCase(DUE, date(2026, 11, 24), told=False)).followed_up == 1
    assert case_tally(LoopCase(DUE, date(2026, 11, 26), told=True)).followed_up == 0
    assert case_tally(LoopCase(DUE, None, told=False)).followed_up == 0  # still open
    assert case_tally(LoopCase(None, DUE, told=False)).followed_up == 0  # no revisit opened


@pytest.mark.parametrize(
    ("answer", "is_recovered"),
    [
        (NextAnswer(SurveyKind.NPS, 9), True),
        (NextAnswer(SurveyKind.NPS, 7), True),  # passive: no longer low
        (NextAnswer(SurveyKind.NPS, 6), False),  # still a detractor
        (NextAnswer(SurveyKind.NPS, 10, product_rating=2), False),  # a low rating is low
        (NextAnswer(SurveyKind.CSAT, 3), True),
        (NextAnswer(SurveyKind.CSAT, 2), False),
        (NextAnswer(SurveyKind.CSAT, 5, service_rating=1), False),
    ],
)
def test_recovered_means_the_next_answer_would_raise_no_alert(
    answer: NextAnswer, is_recovered: bool
) -> None:
    assert recovered(answer) is is_recovered


def test_a_period_worked_out_by_hand() -> None:
    cases = [
        # followed up in time and told, answered 9 next: promoter, recovered
        LoopCase(DUE, DUE, True, NextAnswer(SurveyKind.NPS, 9)),
        # late, not told, answered 3 next: still a detractor
        LoopCase(DUE, date(2026, 12, 1), False, NextAnswer(SurveyKind.NPS, 3)),
        # in time, told, next a CSAT 4: satisfied
        LoopCase(DUE, date(2026, 11, 24), True, NextAnswer(SurveyKind.CSAT, 4)),
        # never followed up, no next answer
        LoopCase(DUE, None, False),
    ]
    t = tally(cases)
    assert t == LoopTally(
        alerts=4,
        followed_up=2,
        told=2,
        next_answers=3,
        next_recovered=2,
        next_promoters=1,
        next_passives=0,
        next_detractors=1,
        next_csat_answers=1,
        next_csat_satisfied=1,
    )
    s = loop_scores(t)
    assert (s.followed_up_pct, s.told_pct, s.next_answer_pct) == (50.0, 50.0, 75.0)
    assert s.recovered_pct == 66.7  # 2 of the 3 next answers
    assert s.next_nps == 0.0  # one promoter, one detractor: a real 0
    assert s.next_csat == 100.0


def test_nothing_to_count_is_no_score_not_zero() -> None:
    s = loop_scores(LoopTally())
    assert s == type(s)(None, None, None, None, None, None)
    only_alert = loop_scores(tally([LoopCase(DUE, None, False)]))
    assert only_alert.followed_up_pct == 0.0 and only_alert.told_pct == 0.0
    assert only_alert.recovered_pct is None and only_alert.next_nps is None


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="impossible"):
        loop_scores(LoopTally(alerts=1, followed_up=2))
    with pytest.raises(ValueError, match="recovered"):
        loop_scores(LoopTally(alerts=2, next_answers=1, next_recovered=2))
