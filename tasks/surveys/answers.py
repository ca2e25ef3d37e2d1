"""IO for survey answers: read the invitation an answer link names, and record an answer for it
- the ``survey_responses`` row and the invitation's status ``responded`` - in one transaction,
once per invitation. The answer page (``crm_web/survey_answer.py``) and ``crm import
responses`` (``crm_db/csv_import``) both record through ``record_answer``; what is valid and
when an invitation still takes an answer are the rules of ``tasks/surveys/rules/answers.py``.

Single use: the invitation's row is locked (PostgreSQL ``FOR UPDATE``; the write lock on
SQLite) before its state is read, so of concurrent posts one records and the others then see it
recorded: a repeat of the same answer is ``REPEATED`` (shown the same thanks), anything else is
``REFUSED`` (shown the invalid-link page).

A suggestion the customer asked to be treated as a complaint (``Submission.as_complaint``)
becomes complaint work in the answer's own transaction, through
``tasks.complaints.intake.open_or_reopen_from_source`` (source ``survey:<response id>``): a new
complaint, a reopen or a note, once per response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_db.enums import InvitationStatus, ResponseSource, SurveyKind
from crm_db.models import Customer, SurveyCampaign, SurveyInvitation, SurveyResponse
from crm_db.session import session_scope
from tasks.common.write_lock import lock_rows
from tasks.complaints.intake import complaint_of_source, open_or_reopen_from_source
from tasks.surveys.rules.answers import (
    Answer,
    FieldProblem,
    Submission,
    import_problem,
    link_answerable,
    same_answer,
)


class Outcome(StrEnum):
    RECORDED = "recorded"  # this call wrote the answer
    REPEATED = "repeated"  # the same answer was recorded before: nothing written
    REFUSED = "refused"  # no such invitation, not answerable now, or answered differently


@dataclass(frozen=True)
class Invitation:
    """What the answer page and the import need about an invitation. The customer comes from
    here, never from the request. Nothing here goes to a log."""

    invitation_id: int
    kind: SurveyKind
    campaign_code: str
    status: InvitationStatus
    created_at: datetime
    expires_at: datetime
    customer_id: int
    locale: str  # the customer's: the page speaks the language of the email
    timezone: str
    answer: Answer | None
    responded_at: datetime | None
    source: ResponseSource | None
    response_id: int | None = None


@dataclass(frozen=True)
class Recording:
    outcome: Outcome
    invitation: Invitation | None  # as it is after the call (None: no such invitation)
    problem: FieldProblem | None = None  # why an import row was refused
    # The complaint the answer's suggestion was recorded on (the customer asked for it).
    complaint_reference: str | None = None


def load_invitation(session: Session, invitation_id: int) -> Invitation | None:
    """One query: the invitation, its campaign's kind, its customer's language, its answer."""
    statement = (
        select(
            SurveyInvitation.id,
            SurveyCampaign.kind,
            SurveyCampaign.code,
            SurveyInvitation.status,
            SurveyInvitation.created_at,
            SurveyInvitation.expires_at,
            Customer.id,
            Customer.locale,
            Customer.timezone,
            SurveyResponse.id,
            SurveyResponse.score,
            SurveyResponse.product_rating,
            SurveyResponse.service_rating,
            SurveyResponse.comment,
            SurveyResponse.responded_at,
            SurveyResponse.source,
        )
        .join(SurveyCampaign, SurveyCampaign.id == SurveyInvitation.campaign_id)
        .join(Customer, Customer.id == SurveyInvitation.customer_id)
        .outerjoin(SurveyResponse, SurveyResponse.invitation_id == SurveyInvitation.id)
        .where(SurveyInvitation.id == invitation_id)
    )
    row = session.execute(statement).one_or_none()
    if row is None:
        return None
    answered = row[9] is not None
    return Invitation(
        invitation_id=row[0],
        kind=row[1],
        campaign_code=row[2],
        status=row[3],
        created_at=row[4],
        expires_at=row[5],
        customer_id=row[6],
        locale=row[7],
        timezone=row[8],
        answer=Answer(row[10], row[11], row[12], row[13]) if answered else None,
        responded_at=row[14] if answered else None,
        source=row[15] if answered else None,
        response_id=row[9],
    )


def read_invitation(engine: Engine, invitation_id: int) -> Invitation | None:
    """The invitation ``invitation_id`` names, or None (a read; writes nothing)."""
    with session_scope(engine) as session:
        return load_invitation(session, invitation_id)


def record_answer(
    session: Session,
    invitation_id: int,
    answer: Answer,
    *,
    now: datetime,
    source: ResponseSource,
    responded_at: datetime | None = None,
    recorded_by_id: int | None = None,
    as_complaint: bool = False,
) -> Recording:
    """Record ``answer`` for the invitation in ``session``'s transaction (the caller commits).
    ``as_complaint``: its suggestion becomes complaint work too, at the answer's time.

    ``web``: only while the link answers (sent or reminded, not expired at ``now``), answered
    at ``now``. Phone, paper and import: at ``responded_at`` (required: the customer's moment,
    never the import's), within the invitation's life (``import_problem``). Locks the
    invitation first: on SQLite this must be the transaction's first statement."""
    invitation = _lock_and_load(session, invitation_id)
    if invitation is None:
        return Recording(Outcome.REFUSED, None)
    return _record_loaded(
        session,
        invitation,
        answer,
        now=now,
        source=source,
        responded_at=responded_at,
        recorded_by_id=recorded_by_id,
        as_complaint=as_complaint,
    )


def _lock_and_load(session: Session, invitation_id: int) -> Invitation | None:
    """Lock the invitation, then read it with its answer. Two statements on purpose: on
    PostgreSQL a ``SELECT ... FOR UPDATE`` that waited for a concurrent answer re-reads only
    the locked row, not the rows joined to it (it would see the invitation ``responded`` but
    no answer, and refuse a repeat of that very answer); the read after the lock takes a fresh
    snapshot (READ COMMITTED) and sees both. On SQLite the lock is the write lock, taken first."""
    lock_rows(session, select(SurveyInvitation.id).where(SurveyInvitation.id == invitation_id))
    return load_invitation(session, invitation_id)


def _record_loaded(
    session: Session,
    invitation: Invitation,
    answer: Answer,
    *,
    now: datetime,
    source: ResponseSource,
    responded_at: datetime | None,
    recorded_by_id: int | None,
    as_complaint: bool,
) -> Recording:
    """``record_answer`` once the invitation is locked and read."""
    invitation_id = invitation.invitation_id
    if invitation.answer is not None:
        if same_answer(invitation.answer, answer):
            return Recording(
                Outcome.REPEATED, invitation, complaint_reference=_complaint_of(session, invitation)
            )
        return Recording(
            Outcome.REFUSED,
            invitation,
            FieldProblem("invitation", "answered", "the invitation was answered already"),
        )
    if source is ResponseSource.WEB:
        if not link_answerable(invitation.status, invitation.expires_at, now):
            return Recording(Outcome.REFUSED, invitation)
        at = now
    else:
        if responded_at is None:
            raise ValueError("an answer typed in from a call or a form needs its responded_at")
        problem = import_problem(
            invitation.status,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            responded_at=responded_at,
            now=now,
        )
        if problem is not None:
            return Recording(Outcome.REFUSED, invitation, problem)
        at = responded_at
    response = SurveyResponse(
        invitation_id=invitation_id,
        score=answer.score,
        product_rating=answer.product_rating,
        service_rating=answer.service_rating,
        comment=answer.suggestion,
        source=source,
        recorded_by_id=recorded_by_id,
        responded_at=at,
        recorded_at=now,
    )
    session.add(response)
    session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.id == invitation_id)
        .values(status=InvitationStatus.RESPONDED)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    after = replace(
        invitation,
        status=InvitationStatus.RESPONDED,
        answer=answer,
        responded_at=at,
        source=source,
        response_id=response.id,
    )
    reference = None
    if as_complaint and answer.suggestion is not None:
        # The customer's own words, kept internal (the complaint's description or a note).
        reference = open_or_reopen_from_source(
            session, invitation.customer_id, "survey", response.id, answer.suggestion, at
        ).reference
    return Recording(Outcome.RECORDED, after, complaint_reference=reference)


def _complaint_of(session: Session, invitation: Invitation) -> str | None:
    """The reference of the complaint an earlier recording of this answer raised, if any: a
    repeat shows the same thanks, reference included."""
    if invitation.response_id is None or invitation.answer is None:
        return None
    if invitation.answer.suggestion is None:
        return None
    complaint = complaint_of_source(
        session, invitation.customer_id, "survey", invitation.response_id
    )
    return None if complaint is None else complaint.external_id


def record_link_answer(
    engine: Engine, invitation_id: int, answer: Answer, *, now: datetime
) -> Recording:
    """``record_answer`` in its own transaction, source ``web``."""
    recorded = record_link_form(
        engine, invitation_id, lambda _invitation: Submission(answer), now=now
    )
    assert isinstance(recorded, Recording)  # the answer is given, so never a form problem
    return recorded


@dataclass(frozen=True)
class FormRejected:
    """The posted form is not a valid answer for this invitation (the page shows it again)."""

    invitation: Invitation
    problems: list[FieldProblem]


def record_link_form(
    engine: Engine,
    invitation_id: int,
    parse: Callable[[Invitation], Submission | list[FieldProblem]],
    *,
    now: datetime,
) -> Recording | FormRejected:
    """The answer page's POST in one transaction: lock and read the invitation, ``parse`` the
    form against it (its campaign's kind decides the score range), record (source ``web``).
    A form that does not parse writes nothing and comes back as ``FormRejected``."""
    for attempt in range(2):
        try:
            with session_scope(engine) as session:
                invitation = _lock_and_load(session, invitation_id)
                if invitation is None:
                    return Recording(Outcome.REFUSED, None)
                submission = parse(invitation)
                if not isinstance(submission, Submission):
                    return FormRejected(invitation, submission)
                return _record_loaded(
                    session,
                    invitation,
                    submission.answer,
                    now=now,
                    source=ResponseSource.WEB,
                    responded_at=None,
                    recorded_by_id=None,
                    as_complaint=submission.as_complaint,
                )
        except IntegrityError:
            # Two first answers at once got past the lock (it cannot on either backend, but
            # the unique invitation_id is the real guard): run again and see the winner.
            if attempt:
                raise
    raise AssertionError("unreachable")


__all__ = [
    "FormRejected",
    "Invitation",
    "Outcome",
    "Recording",
    "load_invitation",
    "read_invitation",
    "record_answer",
    "record_link_answer",
    "record_link_form",
]
