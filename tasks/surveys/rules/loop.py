"""The detractor loop measured (pure): of the survey alerts raised in a period (a detractor, a
CSAT of 1-2, a product or service rating of 1-2), the share followed up within the deadline
(the urgent revisit completed by ``follow_up_due``, 2 working days), the share told the result
(the "here is what we did" email queued), and their next score - the customer's first answer
to a later survey after the alert: how many answered again, the NPS and CSAT of those next
answers, and the share that no longer scored low (``recovered``: the next answer would raise
no alert).

Percentages have no value (``None``, shown "no answers") when there is nothing to count, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date

from crm_db.enums import SurveyKind
from tasks.care_alerts.rules import followed_up_in_time, share_pct, survey_kinds
from tasks.surveys.rules.scores import NpsBand, csat, nps, nps_band


@dataclass(frozen=True, slots=True)
class NextAnswer:
    """The customer's first answer after the alert (to a later survey)."""

    kind: SurveyKind
    score: int
    product_rating: int | None = None
    service_rating: int | None = None


@dataclass(frozen=True, slots=True)
class LoopCase:
    """One survey alert as the loop sees it."""

    follow_up_due: date | None  # NULL when no revisit could be opened
    completed_on: date | None  # the revisit's completion, local date
    told: bool  # the "here is what we did" email was queued
    next_answer: NextAnswer | None = None


@dataclass(frozen=True, slots=True)
class LoopTally:
    alerts: int = 0
    followed_up: int = 0
    told: int = 0
    next_answers: int = 0
    next_recovered: int = 0
    next_promoters: int = 0
    next_passives: int = 0
    next_detractors: int = 0
    next_csat_answers: int = 0
    next_csat_satisfied: int = 0

    def __add__(self, other: LoopTally) -> LoopTally:
        return LoopTally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def recovered(answer: NextAnswer) -> bool:
    """The next answer scored nothing low: it would raise no alert."""
    nps_score = answer.score if answer.kind is SurveyKind.NPS else None
    csat_score = answer.score if answer.kind is SurveyKind.CSAT else None
    return not survey_kinds(
        nps=nps_score,
        csat=csat_score,
        product_rating=answer.product_rating,
        service_rating=answer.service_rating,
    )


def case_tally(case: LoopCase) -> LoopTally:
    """One alert's contribution to its period's tally."""
    answer = case.next_answer
    band = nps_band(answer.score) if answer is not None and answer.kind is SurveyKind.NPS else None
    is_csat = answer is not None and answer.kind is SurveyKind.CSAT
    return LoopTally(
        alerts=1,
        followed_up=int(followed_up_in_time(case.completed_on, case.follow_up_due)),
        told=int(case.told),
        next_answers=int(answer is not None),
        next_recovered=int(answer is not None and recovered(answer)),
        next_promoters=int(band is NpsBand.PROMOTER),
        next_passives=int(band is NpsBand.PASSIVE),
        next_detractors=int(band is NpsBand.DETRACTOR),
        next_csat_answers=int(is_csat),
        next_csat_satisfied=int(is_csat and answer is not None and answer.score >= 4),
    )


def tally(cases: Iterable[LoopCase]) -> LoopTally:
    total = LoopTally()
    for case in cases:
        total = total + case_tally(case)
    return total


@dataclass(frozen=True, slots=True)
class LoopScores:
    followed_up_pct: float | None  # of the alerts
    told_pct: float | None  # of the alerts
    next_answer_pct: float | None  # of the alerts: answered a later survey
    recovered_pct: float | None  # of the next answers: no longer low
    next_nps: float | None  # NPS of the next NPS answers
    next_csat: float | None  # CSAT of the next CSAT answers


def loop_scores(t: LoopTally) -> LoopScores:
    if (
        min(t.alerts, t.followed_up, t.told, t.next_answers) < 0
        or max(t.followed_up, t.told, t.next_answers) > t.alerts
    ):
        raise ValueError(f"impossible loop counts: {t}")
    if t.next_recovered > t.next_answers:
        raise ValueError(f"more recovered than next answers: {t}")
    return LoopScores(
        followed_up_pct=share_pct(t.followed_up, t.alerts),
        told_pct=share_pct(t.told, t.alerts),
        next_answer_pct=share_pct(t.next_answers, t.alerts),
        recovered_pct=share_pct(t.next_recovered, t.next_answers),
        next_nps=nps(t.next_promoters, t.next_passives, t.next_detractors),
        next_csat=csat(t.next_csat_satisfied, t.next_csat_answers),
    )


__all__ = [
    "LoopCase",
    "LoopScores",
    "LoopTally",
    "NextAnswer",
    "case_tally",
    "loop_scores",
    "recovered",
    "tally",
]
