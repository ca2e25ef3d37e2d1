from __future__ import annotations

from datetime import date

import pytest

from crm_db.enums import ContactOutcome
from tasks.revisits.rules.care_feedback import (
    MAX_COMMENT,
    Answer,
    answer_of,
    clean_comment,
    feedback_record,
    follow_up_due,
    questions_for,
)
from tasks.rules.calendar import WorkCalendar

# 2026-10-01..07 is the National Day holiday; 2026-11-20 is a Friday.
CAL = WorkCalendar(exceptions={date(2026, 10, d): False for d in range(1, 8)})
FRIDAY, SATURDAY, MONDAY = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 23)


def test_solved_is_a_completed_contact_without_follow_up() -> None:
    record = feedback_record(Answer.SOLVED, None)
    assert record.outcome is ContactOutcome.COMPLETED
    assert record.follow_up is False
    assert record.notes == "customer feedback: issue solved"


def test_not_solved_raises_the_issue_again_and_asks_for_a_call() -> None:
    record = feedback_record(Answer.NOT_SOLVED, "余额还是不对")
    assert record.outcome is ContactOutcome.ISSUE_RAISED
    assert record.follow_up is True
    assert record.notes == "customer feedback: not solved\n余额还是不对"


def test_please_call_me_is_a_completed_contact_with_a_call() -> None:
    record = feedback_record(Answer.CALL_ME, None)
    assert record.outcome is ContactOutcome.COMPLETED
    assert record.follow_up is True
    assert record.notes == "customer feedback: please call me"


def test_the_answer_reads_back_from_the_contact_it_recorded() -> None:
    for answer in Answer:
        record = feedback_record(answer, "x")
        assert answer_of(record.outcome, record.notes) is answer
    # Contacts recorded before "please call me" existed read back from their outcome.
    assert answer_of(ContactOutcome.COMPLETED, None) is Answer.SOLVED
    assert answer_of(ContactOutcome.ISSUE_RAISED, "old") is Answer.NOT_SOLVED


def test_an_email_asks_only_what_its_buttons_answer() -> None:
    assert questions_for(asked_about_issue=True) == (Answer.SOLVED, Answer.NOT_SOLVED)
    assert questions_for(asked_about_issue=False) == (Answer.CALL_ME,)


def test_follow_up_is_the_next_working_day_after_the_answer() -> None:
    assert follow_up_due(date(2026, 11, 18), CAL, taken=()) == date(2026, 11, 19)
    # Answered on a Friday or over the weekend: Monday.
    assert follow_up_due(FRIDAY, CAL, taken=()) == MONDAY
    assert follow_up_due(SATURDAY, CAL, taken=()) == MONDAY
    # Answered the day before a holiday week: the first working day after it.
    assert follow_up_due(date(2026, 9, 30), CAL, taken=()) == date(2026, 10, 8)


def test_follow_up_skips_days_that_already_hold_a_revisit_of_the_customer() -> None:
    taken = {MONDAY, date(2026, 11, 24)}
    assert follow_up_due(FRIDAY, CAL, taken=taken) == date(2026, 11, 25)


def test_comment_is_trimmed_and_browser_line_endings_count_once() -> None:
    assert clean_comment("  first\r\nsecond\r  ") == "first\nsecond"
    assert clean_comment("   ") is None
    assert clean_comment("x" * MAX_COMMENT) == "x" * MAX_COMMENT
    # 1,000 CRLF pairs are 1,000 characters once stored, within the limit.
    assert clean_comment("a\r\n" * (MAX_COMMENT // 2)) is not None


@pytest.mark.parametrize("raw", ["x" * (MAX_COMMENT + 1), "bad\x00byte"])
def test_comment_too_long_or_with_nul_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="at most"):
        clean_comment(raw)
