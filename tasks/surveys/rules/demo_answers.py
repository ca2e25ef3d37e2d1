"""The demo's answers (pure): which open invitations ``crm demo answers`` answers and with what,
from a seed - the same seed, the same answers. The scores follow the demo seed's distributions
(``crm_db.demo.surveys``: NPS mostly 7-10 with a tail of detractors, CSAT mostly 4-5), so the
next surveys run has promoters, detractors and low ratings to score and alert on.
"""

from __future__ import annotations

import random

from crm_db.demo.surveys import CSAT_P, NPS_P
from crm_db.demo.vocab import SURVEY_COMMENTS
from crm_db.enums import SurveyKind
from tasks.surveys.rules.answers import Answer, score_range

RATING_SHARE = 0.6  # of the answers that also rate the product and the service


def _rating(rng: random.Random, score: int, kind: SurveyKind) -> int:
    """A 1-5 rating that leans with the score (a detractor rates low more often)."""
    low, high = score_range(kind)
    lean = 1 + 4 * (score - low) / (high - low)
    return max(1, min(5, round(lean + rng.uniform(-1.5, 1.0))))


def demo_answer(seed: int, invitation_id: int, kind: SurveyKind, share: float) -> Answer | None:
    """The answer the demo gives to invitation ``invitation_id`` (``None``: left unanswered,
    for ``1 - share`` of them)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be within 0-1, got {share}")
    rng = random.Random(f"crm-demo-answers:{seed}:{invitation_id}")
    if rng.random() >= share:
        return None
    low, _ = score_range(kind)
    weights = NPS_P if kind is SurveyKind.NPS else CSAT_P
    score = low + rng.choices(range(len(weights)), weights=weights)[0]
    rated = rng.random() < RATING_SHARE
    return Answer(
        score=score,
        product_rating=_rating(rng, score, kind) if rated else None,
        service_rating=_rating(rng, score, kind) if rated else None,
        suggestion=rng.choice(SURVEY_COMMENTS),
    )


__all__ = ["RATING_SHARE", "demo_answer"]
