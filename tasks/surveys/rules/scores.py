"""Survey scores (pure): NPS, CSAT and the response rate of a group of answers.

- **NPS** = % promoters (9-10) - % detractors (0-6) of the NPS answers, from -100 to 100.
- **CSAT** = % of the CSAT answers that are 4 or 5.
- **Response rate** = responses / invitations sent, in %.

A group with no answers (no invitations sent) has no score: ``None``, never 0 - "nobody
answered" is not "everybody was neutral". Percentages are rounded to one decimal at the end
only (exact integer arithmetic before), so the same counts always give the same figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PROMOTER_MIN = 9
DETRACTOR_MAX = 6
CSAT_SATISFIED_MIN = 4


class NpsBand(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def nps_band(score: int) -> NpsBand:
    """Where an NPS answer (0-10) falls; anything else is an error naming the value."""
    if not 0 <= score <= 10:
        raise ValueError(f"NPS score must be 0-10, got {score}")
    if score >= PROMOTER_MIN:
        return NpsBand.PROMOTER
    if score <= DETRACTOR_MAX:
        return NpsBand.DETRACTOR
    return NpsBand.PASSIVE


def _pct(part: int, whole: int) -> float | None:
    if part < 0 or whole < 0 or part > whole:
        raise ValueError(f"counts must satisfy 0 <= {part} <= {whole}")
    if whole == 0:
        return None
    return round(100 * part / whole, 1)


def nps(promoters: int, passives: int, detractors: int) -> float | None:
    """% promoters - % detractors; ``None`` without NPS answers."""
    if min(promoters, passives, detractors) < 0:
        raise ValueError("NPS counts cannot be negative")
    answers = promoters + passives + detractors
    if answers == 0:
        return None
    return round(100 * (promoters - detractors) / answers, 1)


def csat(satisfied: int, answers: int) -> float | None:
    """% of CSAT answers 4-5; ``None`` without CSAT answers."""
    return _pct(satisfied, answers)


def response_rate(responses: int, sent: int) -> float | None:
    """% of the invitations sent that were answered; ``None`` when none was sent."""
    return _pct(responses, sent)


@dataclass(frozen=True, slots=True)
class Tally:
    """A group's counts (as SQL aggregates them)."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat_satisfied: int = 0
    csat_answers: int = 0
    sent: int = 0
    responses: int = 0


@dataclass(frozen=True, slots=True)
class Scores:
    nps: float | None
    csat: float | None
    response_rate: float | None
    nps_answers: int
    csat_answers: int


def scores(tally: Tally) -> Scores:
    return Scores(
        nps=nps(tally.promoters, tally.passives, tally.detractors),
        csat=csat(tally.csat_satisfied, tally.csat_answers),
        response_rate=response_rate(tally.responses, tally.sent),
        nps_answers=tally.promoters + tally.passives + tally.detractors,
        csat_answers=tally.csat_answers,
    )


def show(value: float | None) -> str:
    """For the artifact and reports: ``no answers`` rather than a made-up 0."""
    return "no answers" if value is None else f"{value:.1f}"


__all__ = [
    "NpsBand",
    "Scores",
    "Tally",
    "csat",
    "nps",
    "nps_band",
    "response_rate",
    "scores",
    "show",
]
