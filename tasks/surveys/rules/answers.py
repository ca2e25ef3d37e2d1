"""Survey answer rules: what a valid answer is, and when an invitation may still be answered.

An answer is the score (NPS 0-10, CSAT 1-5: the campaign's kind decides), two optional 1-5
ratings (product, service) and an optional suggestion. The page and ``crm import responses``
both validate through ``validate_answer``, so the same input gets the same verdict whichever way
it arrives. Pure: values in, decisions out; ``tasks/surveys/answers.py`` reads and writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from crm_db.enums import InvitationStatus, SurveyKind

# Shared with every form (tasks/rules/forms.py); named here too for the survey modules.
from tasks.rules.forms import FieldProblem as FieldProblem
from tasks.rules.forms import normalise_text as normalise_text

SCORE_RANGES: dict[SurveyKind, tuple[int, int]] = {
    SurveyKind.NPS: (0, 10),
    SurveyKind.CSAT: (1, 5),
}
RATING_RANGE = (1, 5)
RATING_FIELDS = ("product_rating", "service_rating")
# A suggestion box, not a letter: long enough for a paragraph of Chinese or English.
MAX_SUGGESTION = 2000
# The statuses in which the link still answers: the email went out and nobody answered yet.
ANSWERABLE = frozenset({InvitationStatus.SENT, InvitationStatus.REMINDED})
# A phone or paper answer may be typed in after the flow expired the invitation (the call
# was within the window); never once it was answered, and never before it was created.
IMPORTABLE = frozenset(
    {
        InvitationStatus.PENDING,
        InvitationStatus.SENT,
        InvitationStatus.REMINDED,
        InvitationStatus.EXPIRED,
    }
)

_SMALL_NUMBER = re.compile(r"\d{1,2}", re.ASCII)  # no sign, no spaces, no full-width digits


@dataclass(frozen=True)
class Answer:
    score: int
    product_rating: int | None = None
    service_rating: int | None = None
    suggestion: str | None = None


def score_range(kind: SurveyKind) -> tuple[int, int]:
    return SCORE_RANGES[kind]


def score_choices(kind: SurveyKind) -> tuple[int, ...]:
    low, high = SCORE_RANGES[kind]
    return tuple(range(low, high + 1))


def rating_choices() -> tuple[int, ...]:
    return tuple(range(RATING_RANGE[0], RATING_RANGE[1] + 1))


def preselected_score(kind: SurveyKind, raw: str | None) -> int | None:
    """The score a one-click link (``?score=N``) preselects, or None when it is not one the
    kind offers (a hand-edited link just opens the page without a choice)."""
    if raw is None or not _SMALL_NUMBER.fullmatch(raw):
        return None
    value = int(raw)
    low, high = SCORE_RANGES[kind]
    return value if low <= value <= high else None


def _number(
    field: str, raw: str | int | None, low: int, high: int, *, required: bool
) -> tuple[int | None, FieldProblem | None]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            return None, FieldProblem(field, "missing", "missing (a whole number is required)")
        return None, None
    if isinstance(raw, bool):
        return None, FieldProblem(field, "invalid", "not a whole number")
    if isinstance(raw, int):
        value = raw
    else:
        text = raw.strip()
        if not _SMALL_NUMBER.fullmatch(text):
            return None, FieldProblem(field, "invalid", f"not a whole number from {low} to {high}")
        value = int(text)
    if not low <= value <= high:
        return None, FieldProblem(field, "range", f"must be from {low} to {high}")
    return value, None


def validate_answer(
    kind: SurveyKind,
    *,
    score: str | int | None,
    product_rating: str | int | None = None,
    service_rating: str | int | None = None,
    suggestion: str | None = None,
) -> Answer | list[FieldProblem]:
    """The answer, or every field's problem: ``score`` required within the kind's range; the
    ratings optional, 1-5; the suggestion optional, at most ``MAX_SUGGESTION`` characters once
    normalised."""
    problems: list[FieldProblem] = []
    low, high = SCORE_RANGES[kind]
    value, problem = _number("score", score, low, high, required=True)
    if problem:
        problems.append(problem)
    ratings: dict[str, int | None] = {}
    for field, raw in zip(RATING_FIELDS, (product_rating, service_rating), strict=True):
        ratings[field], problem = _number(field, raw, *RATING_RANGE, required=False)
        if problem:
            problems.append(problem)
    text = None if suggestion is None else normalise_text(suggestion)
    if text is not None and len(text) > MAX_SUGGESTION:
        problems.append(
            FieldProblem("suggestion", "too_long", f"longer than {MAX_SUGGESTION} characters")
        )
    if problems:
        return problems
    assert value is not None
    return Answer(value, ratings["product_rating"], ratings["service_rating"], text)


@dataclass(frozen=True)
class Submission:
    """An answer as it was sent: the answer, and whether the customer asked that their
    suggestion be treated as a complaint (the page's checkbox, the import's ``as_complaint``).
    The request is not part of the answer: a repeat of the answer is the same answer whatever
    the box said, and nothing about it is stored beside the answer (the complaint links back)."""

    answer: Answer
    as_complaint: bool = False


def complaint_request(answer: Answer, ticked: bool) -> bool | FieldProblem:
    """Whether to treat ``answer``'s suggestion as a complaint: only when asked, and then
    only with something to record (a ticked box without a suggestion is an error, not a silent
    no-op: the customer meant to complain about something)."""
    if not ticked:
        return False
    if answer.suggestion is None:
        return FieldProblem(
            "as_complaint", "no_suggestion", "treating as a complaint needs a suggestion"
        )
    return True


def link_answerable(status: InvitationStatus, expires_at: datetime, now: datetime) -> bool:
    """Whether the invitation's link takes an answer at ``now``: sent or reminded, and not
    expired (the flow's expiry may lag; the time decides)."""
    return status in ANSWERABLE and now < expires_at


def import_problem(
    status: InvitationStatus,
    *,
    created_at: datetime,
    expires_at: datetime,
    responded_at: datetime,
    now: datetime,
) -> FieldProblem | None:
    """Why a phone or paper answer cannot be recorded for this invitation, or None. The
    answer's own time decides: within the invitation's life, not in the future."""
    if status not in IMPORTABLE:
        return FieldProblem("invitation", "answered", "the invitation was answered already")
    if responded_at > now:
        return FieldProblem("responded_at", "future", "in the future")
    if responded_at < created_at:
        return FieldProblem("responded_at", "early", "before the invitation was created")
    if responded_at >= expires_at:
        return FieldProblem("responded_at", "late", "after the invitation expired")
    return None


def same_answer(recorded: Answer, posted: Answer) -> bool:
    """A repeat of the recorded answer (a double click, a refresh that re-posts): shown the
    same thanks. Anything else posted to a used link is refused."""
    return recorded == posted
