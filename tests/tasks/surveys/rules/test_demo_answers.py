"""The demo's seeded answers (pure): valid for the survey's kind, the same for the same seed,
about ``share`` of the invitations answered, detractors among them."""

from __future__ import annotations

import pytest

from crm_db.enums import SurveyKind
from tasks.surveys.rules.answers import score_range
from tasks.surveys.rules.demo_answers import demo_answer


@pytest.mark.parametrize("kind", list(SurveyKind))
def test_answers_are_valid_and_reproducible(kind: SurveyKind) -> None:
    low, high = score_range(kind)
    answers = [demo_answer(42, i, kind, 0.4) for i in range(1, 2001)]
    given = [a for a in answers if a is not None]
    assert 700 <= len(given) <= 900  # about 40 % of 2,000
    assert all(low <= a.score <= high for a in given)
    for a in given:
        for rating in (a.product_rating, a.service_rating):
            assert rating is None or 1 <= rating <= 5
    assert answers == [demo_answer(42, i, kind, 0.4) for i in range(1, 2001)]
    assert answers != [demo_answer(7, i, kind, 0.4) for i in range(1, 2001)]
    low_scores = [a for a in given if a.score <= (6 if kind is SurveyKind.NPS else 2)]
    assert low_scores, "the demo must give the loop something to alert on"


def test_share_bounds() -> None:
    assert all(demo_answer(1, i, SurveyKind.NPS, 0.0) is None for i in range(100))
    assert all(demo_answer(1, i, SurveyKind.NPS, 1.0) is not None for i in range(100))
    with pytest.raises(ValueError, match="share"):
        demo_answer(1, 1, SurveyKind.NPS, 1.5)
