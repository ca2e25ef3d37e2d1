"""Care feedback rules: what a customer's answer to a care email records, and when the follow-up
call falls due.

The email asks only what its buttons answer: a customer with a recorded issue is asked "was it
solved?" (solved / not solved); everyone else is thanked and asked "anything we can help with?",
with one button, "please call me" (``questions_for``).

Pure functions over values; ``tasks/revisits/care_feedback.py`` does the reading and writing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from crm_db.enums import ContactChannel, ContactOutcome
from tasks.rules.calendar import WorkCalendar

MAX_COMMENT = 2000
# An unsolved issue is a conversation, not another email: the account manager calls.
FOLLOW_UP_CHANNEL = ContactChannel.PHONE
# How far ahead a follow-up date is looked for when earlier working days already hold a revisit
# of the customer (one revisit per customer and day); a year of working days is never all taken.
_SEARCH_DAYS = 370


class Answer(StrEnum):
    SOLVED = "solved"
    NOT_SOLVED = "not_solved"
    CALL_ME = "call_me"


# The answers each kind of care email offers (its buttons, and the page's choices).
ISSUE_ANSWERS: tuple[Answer, ...] = (Answer.SOLVED, Answer.NOT_SOLVED)
THANKS_ANSWERS: tuple[Answer, ...] = (Answer.CALL_ME,)

_HEADLINES = {
    Answer.SOLVED: "customer feedback: issue solved",
    Answer.NOT_SOLVED: "customer feedback: not solved",
    Answer.CALL_ME: "customer feedback: please call me",
}


def questions_for(asked_about_issue: bool) -> tuple[Answer, ...]:
    """The answers a care email offers: about its recorded issue, or the one "please call me"."""
    return ISSUE_ANSWERS if asked_about_issue else THANKS_ANSWERS


@dataclass(frozen=True)
class FeedbackRecord:
    """What an answer writes: the contact in the customer file, and whether the account manager
    must follow up."""

    outcome: ContactOutcome
    notes: str
    follow_up: bool


def feedback_record(answer: Answer, comment: str | None) -> FeedbackRecord:
    """Solved: a completed contact. Not solved: the customer raised the issue again, so the
    contact says so and the account manager gets a revisit to call them. Please call me: the
    customer was reached and asks for a call, so a completed contact and a call."""
    headline = _HEADLINES[answer]
    return FeedbackRecord(
        outcome=(
            ContactOutcome.ISSUE_RAISED if answer is Answer.NOT_SOLVED else ContactOutcome.COMPLETED
        ),
        notes=f"{headline}\n{comment}" if comment else headline,
        follow_up=answer is not Answer.SOLVED,
    )


def answer_of(outcome: ContactOutcome, notes: str | None) -> Answer:
    """The answer a feedback contact records (the inverse of ``feedback_record``): the
    headline names it; contacts written before "please call me" existed carry the outcome."""
    headline = (notes or "").split("\n", 1)[0]
    for answer, text in _HEADLINES.items():
        if headline == text:
            return answer
    return Answer.SOLVED if outcome is ContactOutcome.COMPLETED else Answer.NOT_SOLVED


def follow_up_due(answered_on: date, calendar: WorkCalendar, taken: Collection[date]) -> date:
    """The due date of the follow-up revisit: the first working day after the answer (so it
    heads the account manager's next digest), skipping days that already hold a revisit of this
    customer (``taken``; the database allows one per customer and day)."""
    day = calendar.next_working_day(answered_on + timedelta(days=1))
    for _ in range(_SEARCH_DAYS):
        if day not in taken:
            return day
        day = calendar.next_working_day(day + timedelta(days=1))
    raise ValueError(f"no free working day for a follow-up within {_SEARCH_DAYS} days")


def call_day(planned_on: date, answered_on: date, calendar: WorkCalendar) -> date:
    """The day the feedback page promises the call: the call revisit's planned day when it lies
    after the answer (``follow_up_due``'s day, or the customer's open revisit due earlier);
    when it does not (an overdue open revisit became the call, and stays due then so that it
    escalates), the first working day after the answer - the digest of that morning lists it
    with the customer's words."""
    if planned_on > answered_on:
        return planned_on
    return calendar.next_working_day(answered_on + timedelta(days=1))


def clean_comment(raw: str) -> str | None:
    """The comment as stored: browser line endings (CRLF) as one, trimmed; ``None`` if empty.
    Raises ``ValueError`` past ``MAX_COMMENT`` characters or with a NUL."""
    comment = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(comment) > MAX_COMMENT or "\x00" in comment:
        raise ValueError(f"comment must be at most {MAX_COMMENT} characters of text")
    return comment or None


__all__ = [
    "FOLLOW_UP_CHANNEL",
    "ISSUE_ANSWERS",
    "THANKS_ANSWERS",
    "questions_for",
    "MAX_COMMENT",
    "Answer",
    "FeedbackRecord",
    "answer_of",
    "call_day",
    "clean_comment",
    "feedback_record",
    "follow_up_due",
]
