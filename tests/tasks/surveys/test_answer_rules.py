"""The answer rules: score ranges by kind, optional ratings, the suggestion's normalisation and
cap, and when a link or an import may still answer an invitation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_db.enums import InvitationStatus, SurveyKind
from tasks.surveys.rules.answers import (
    MAX_SUGGESTION,
    Answer,
    FieldProblem,
    import_problem,
    link_answerable,
    normalise_text,
    preselected_score,
    same_answer,
    score_choices,
    validate_answer,
)

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def _fields(result: Answer | list[FieldProblem]) -> list[tuple[str, str]]:
    assert isinstance(result, list), result
    return [(p.field, p.code) for p in result]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (SurveyKind.NPS, ["0", "6", "10", 0, 10], ["11", "-1", -1, 11]),
        (SurveyKind.CSAT, ["1", "5", 3], ["0", "6", 0, 6]),
    ],
)
def test_score_range_depends_on_the_kind(
    kind: SurveyKind, good: list[str | int], bad: list[str | int]
) -> None:
    for value in good:
        answer = validate_answer(kind, score=value)
        assert isinstance(answer, Answer) and answer.score == int(value)
    for value in bad:
        assert _fields(validate_answer(kind, score=value))[0][0] == "score"


@pytest.mark.parametrize("raw", ["", " ", None, "abc", "5.0", "+5", "０", "1e1", "007", True])
def test_score_must_be_a_plain_whole_number(raw: str | None) -> None:
    problems = _fields(validate_answer(SurveyKind.NPS, score=raw))
    assert problems[0][0] == "score"
    assert problems[0][1] in {"missing", "invalid"}


def test_ratings_are_optional_and_one_to_five() -> None:
    answer = validate_answer(SurveyKind.NPS, score="9", product_rating="", service_rating="5")
    assert answer == Answer(9, None, 5, None)
    problems = _fields(
        validate_answer(SurveyKind.CSAT, score="9", product_rating="0", service_rating="x")
    )
    # Every field's problem at once, not only the first.
    assert problems == [
        ("score", "range"),
        ("product_rating", "range"),
        ("service_rating", "invalid"),
    ]


def test_suggestion_is_normalised_and_capped() -> None:
    raw = "  加油站\r\n很好\u202e  \r\n\r\n\r\n\r\nbut <b>slow</b>\x00\tqueue  "
    assert normalise_text(raw) == "加油站\n很好\n\nbut <b>slow</b> queue"
    assert normalise_text(" \r\n\t ") is None
    # NFC: a decomposed é counts as one character, as the customer sees it.
    assert normalise_text("e\u0301") == "\u00e9"
    at_cap = "好" * MAX_SUGGESTION
    answer = validate_answer(SurveyKind.NPS, score=8, suggestion=at_cap + "   ")
    assert isinstance(answer, Answer) and answer.suggestion == at_cap
    assert _fields(validate_answer(SurveyKind.NPS, score=8, suggestion=at_cap + "!")) == [
        ("suggestion", "too_long")
    ]


def test_problems_never_repeat_the_input() -> None:
    secret = "13812345678"
    problems = validate_answer(SurveyKind.NPS, score=secret, product_rating=secret)
    assert isinstance(problems, list)
    assert all(secret not in p.message for p in problems)


def test_one_click_preselection() -> None:
    assert preselected_score(SurveyKind.NPS, "10") == 10
    assert preselected_score(SurveyKind.NPS, "0") == 0
    assert preselected_score(SurveyKind.CSAT, "0") is None
    assert preselected_score(SurveyKind.CSAT, "5") == 5
    for raw in (None, "", "11", "x", "-1", "1 "):
        assert preselected_score(SurveyKind.NPS, raw) is None
    assert score_choices(SurveyKind.NPS) == tuple(range(11))
    assert score_choices(SurveyKind.CSAT) == (1, 2, 3, 4, 5)


def test_link_answers_only_sent_or_reminded_before_expiry() -> None:
    later = NOW + timedelta(days=1)
    assert link_answerable(InvitationStatus.SENT, later, NOW)
    assert link_answerable(InvitationStatus.REMINDED, later, NOW)
    assert not link_answerable(InvitationStatus.SENT, NOW, NOW)  # expiry is exclusive
    for status in (InvitationStatus.PENDING, InvitationStatus.RESPONDED, InvitationStatus.EXPIRED):
        assert not link_answerable(status, later, NOW)


def test_import_answers_within_the_invitation_life() -> None:
    created, expires = NOW - timedelta(days=20), NOW - timedelta(days=6)

    def problem(status: InvitationStatus, at: datetime) -> str | None:
        found = import_problem(
            status, created_at=created, expires_at=expires, responded_at=at, now=NOW
        )
        return None if found is None else found.field + ":" + found.code

    inside = NOW - timedelta(days=10)
    # The flow expired it meanwhile: the phone answer from inside the window still counts.
    assert problem(InvitationStatus.EXPIRED, inside) is None
    assert problem(InvitationStatus.PENDING, inside) is None
    assert problem(InvitationStatus.RESPONDED, inside) == "invitation:answered"
    assert problem(InvitationStatus.SENT, expires) == "responded_at:late"
    assert problem(InvitationStatus.SENT, created - timedelta(seconds=1)) == "responded_at:early"
    assert import_problem(
        InvitationStatus.SENT,
        created_at=created,
        expires_at=NOW + timedelta(days=5),
        responded_at=NOW + timedelta(hours=1),
        now=NOW,
    ) == FieldProblem("responded_at", "future", "in the future")


def test_same_answer_is_exact() -> None:
    first = Answer(9, 4, None, "好")
    assert same_answer(first, Answer(9, 4, None, "好"))
    assert not same_answer(first, Answer(9, 4, 4, "好"))
    assert not same_answer(first, Answer(8, 4, None, "好"))
