"""``crm import responses``: survey answers collected by phone or on paper (or exported from
another survey tool), typed in against the invitation they answer.

A row names its invitation by number (``invitation``) or by the customer and the campaign
(``customer_id`` + ``campaign``: a customer has one invitation per campaign). This module checks
what a row says on its own - every field as the answer page checks it (the rules of
``tasks/surveys/rules/answers.py``), with the widest score range, 0-10 - and the writer
(``tasks/surveys/importing.py``) checks it against the invitation: the campaign's score range,
the invitation's life, not answered before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_db.csv_import import fields
from crm_db.csv_import.errors import CellError, FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import ResponseSource, SurveyKind
from tasks.surveys.rules.answers import (
    MAX_SUGGESTION,
    Answer,
    FieldProblem,
    complaint_request,
    validate_answer,
)

# As for contacts: the source system's clock may run a little ahead of ours.
FUTURE_TOLERANCE = timedelta(minutes=5)
# What a file may say it came from; ``web`` is the answer page's own.
IMPORT_SOURCES = (ResponseSource.PHONE, ResponseSource.PAPER, ResponseSource.IMPORT)
_NUMBER = re.compile(r"\d{1,18}", re.ASCII)

COLUMNS = (
    Column(
        "invitation",
        False,
        "the invitation's number; or leave it empty and give customer_id and campaign",
    ),
    Column("customer_id", False, "external id of the customer (with campaign)"),
    Column("campaign", False, "the campaign's code, e.g. nps:2026Q4:A (with customer_id)"),
    Column("score", True, "0-10 for an NPS campaign, 1-5 for a CSAT one"),
    Column("product_rating", False, "1-5, or empty"),
    Column("service_rating", False, "1-5, or empty"),
    Column(
        "suggestion",
        False,
        f"the customer's suggestion, line breaks allowed, ≤ {MAX_SUGGESTION:,} characters",
    ),
    Column(
        "responded_at",
        True,
        "when the customer answered (never the import's time): ISO-8601, e.g. "
        "2026-11-20T15:10:00+08:00, without an offset in CRM_TIMEZONE; within the "
        "invitation's life, not in the future",
    ),
    Column("source", False, "phone, paper or import (empty: import)"),
    Column("recorded_by", False, "external id of the staff member who took the answer"),
    Column(
        "as_complaint",
        False,
        "yes/true/1 when the customer asked that the suggestion be treated as a complaint "
        "(opens or reopens one, linked to the answer; needs a suggestion); empty or no: not. "
        "The column may be left out",
        header_optional=True,
    ),
)


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    line: int
    invitation_id: int | None
    customer_id: int | None
    campaign_code: str | None
    # The cells as the rules read them: the campaign's kind is known only to the writer.
    score: str
    product_rating: str
    service_rating: str
    suggestion: str
    responded_at: datetime
    source: ResponseSource
    recorded_by_id: int | None
    as_complaint: bool = False


def _invitation(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not _NUMBER.fullmatch(value) or int(value) == 0:
        raise CellError("not an invitation number (a whole number)")
    return int(value)


def _source(value: str) -> ResponseSource:
    if not value.strip():
        return ResponseSource.IMPORT
    source = fields.choice(value, ResponseSource)
    if source not in IMPORT_SOURCES:
        raise CellError("must be phone, paper or import (web answers come from the page)")
    return source


def _responded_at(value: str, lookups: Lookups, now: datetime) -> datetime:
    moment = fields.iso_datetime(value, lookups.default_timezone)
    if moment > now + FUTURE_TOLERANCE:
        raise CellError("in the future (more than 5 minutes after the import started)")
    return moment


def _staff(value: str, lookups: Lookups) -> int | None:
    """Any staff member, active or not: they took the call when they were still here."""
    if not value.strip():
        return None
    return fields.resolve(value, lookups.staff, "unknown staff external id").id


def validate_response(
    row: Mapping[str, str], line: int, lookups: Lookups
) -> ResponseRecord | list[FieldError]:
    now = lookups.now
    if now is None:  # a programming error: the pipeline always sets it
        raise ValueError("responses are validated against the import's clock: set Lookups.now")
    check = RowChecker(row, line)
    invitation_id = check.take("invitation", _invitation)
    customer_id = check.take(
        "customer_id",
        lambda v: (
            fields.resolve(v, lookups.customers, "unknown customer external id")
            if v.strip()
            else None
        ),
    )
    campaign = check.take("campaign", fields.optional_identifier)
    if invitation_id is None and not check.errors:
        if not row["customer_id"].strip():
            check.fail("customer_id", "required when invitation is empty (with campaign)")
        if not row["campaign"].strip():
            check.fail("campaign", "required when invitation is empty (with customer_id)")
    elif invitation_id is not None and (row["customer_id"].strip() or row["campaign"].strip()):
        check.fail("invitation", "give the invitation or customer_id and campaign, not both")
    # The page's checks; NPS has the widest range (the writer applies the campaign's).
    answer = validate_answer(
        SurveyKind.NPS,
        score=row["score"],
        product_rating=row["product_rating"],
        service_rating=row["service_rating"],
        suggestion=row["suggestion"],
    )
    if not isinstance(answer, Answer):
        for problem in answer:
            check.fail(problem.field, problem.message)
    as_complaint = check.take("as_complaint", fields.boolean)
    if isinstance(answer, Answer) and as_complaint:
        request = complaint_request(answer, as_complaint)
        if isinstance(request, FieldProblem):
            check.fail(request.field, request.message)
    record = ResponseRecord(
        line=line,
        invitation_id=invitation_id,
        customer_id=customer_id,
        campaign_code=campaign,
        score=row["score"],
        product_rating=row["product_rating"],
        service_rating=row["service_rating"],
        suggestion=row["suggestion"],
        responded_at=check.take("responded_at", lambda v: _responded_at(v, lookups, now)),
        source=check.take("source", _source),
        recorded_by_id=check.take("recorded_by", lambda v: _staff(v, lookups)),
        as_complaint=bool(as_complaint),
    )
    return check.errors or record


SPEC: KindSpec[ResponseRecord] = KindSpec(
    name="responses",
    columns=COLUMNS,
    key_columns=("invitation",),
    needs=frozenset({LookupName.STAFF, LookupName.CUSTOMERS}),
    validate=validate_response,
)
