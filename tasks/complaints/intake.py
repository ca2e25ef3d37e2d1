"""Intake IO: reference numbers, the receipt to the customer and the intake alert to senior
management (queued in the intake's transaction, idempotent by key), and ``recompute``, which
re-copies the SLA targets in force onto open complaints.

The rules (who gets what, the keys, the promised time as the customer reads it) are in
``tasks/complaints/rules/intake.py``.

Consent: a receipt is a transactional service message about the customer's own complaint
(``MessageKind.SERVICE``): marketing and survey opt-outs and the contact cap do not apply; an
unsubscribed customer gets nothing (unsubscribing stops all customer mail), nor does one
without a deliverable, valid address. Skips are counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_db.enums import (
    ComplaintEventKind,
    ComplaintSource,
    ComplaintStatus,
    EventSource,
    Severity,
)
from crm_db.models import Complaint, ComplaintEvent, Customer, SlaPolicy
from crm_db.types import utcnow
from tasks.common.contact_policy import load_contact_facts
from tasks.common.directory import Directory, load_directory
from tasks.common.write_lock import get_for_update
from tasks.complaints.lifecycle import (
    ComplaintNotFoundError,
    Intake,
    apply_event,
    copy_targets,
    open_complaint,
    refresh,
)
from tasks.complaints.policies import complaint_hours
from tasks.complaints.rules.intake import (
    ALERT_KIND,
    RECEIPT_KIND,
    alert_due,
    alert_key,
    local_time,
    next_reference,
    receipt_due,
    receipt_key,
)
from tasks.complaints.rules.lifecycle import OPEN_STATES, Transition
from tasks.mail.outbox import NewMessage, enqueue, queued_keys
from tasks.rules.contact_policy import ContactRules, MessageKind, decide

_SERVICE_RULES = ContactRules(cap_days=1)  # a service message ignores the cap


def new_reference(session: Session, at: datetime) -> str:
    """The next reference number of ``at``'s year (``CP2026`` + 7 digits), as far as this
    transaction sees. Two intakes at once can both pick it: open through
    ``open_with_reference``, which retries a taken one."""
    year = at.year
    last = session.scalar(
        select(func.max(Complaint.external_id)).where(
            Complaint.external_id.like(f"CP{year:04d}_______"),
            func.length(Complaint.external_id) == 13,
        )
    )
    return next_reference(year, last)


REFERENCE_ATTEMPTS = 5


def open_with_reference(
    session: Session,
    at: datetime,
    intake_for: Callable[[str], Intake],
    *,
    actor_id: int | None = None,
    source: EventSource = EventSource.CLI,
    note: str | None = None,
) -> Complaint:
    """A new complaint under the next free reference number of ``at``'s year, in the caller's
    transaction. Each attempt runs in a savepoint: when a concurrent intake took the same
    number first (PostgreSQL: the insert waits for that transaction, then the unique key on
    ``external_id`` refuses it), only the attempt is rolled back and the next number is tried,
    up to ``REFERENCE_ATTEMPTS`` times. Any other integrity error is raised as it is (SQLite
    serialises writers: no collision there)."""
    for attempt in range(1, REFERENCE_ATTEMPTS + 1):
        reference = new_reference(session, at)
        try:
            with session.begin_nested():
                return open_complaint(
                    session, intake_for(reference), actor_id=actor_id, source=source, note=note
                )
        except IntegrityError:
            taken = session.scalar(select(Complaint.id).where(Complaint.external_id == reference))
            if taken is None or attempt == REFERENCE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class IntakeNotices:
    receipts: int = 0
    alerts: int = 0
    already_queued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # receipts not sent, by reason

    def line(self) -> str:
        parts = [f"receipts {self.receipts}", f"senior management alerts {self.alerts}"]
        if self.already_queued:
            parts.append(f"already queued {self.already_queued}")
        parts += [f"no receipt ({reason}) {n}" for reason, n in sorted(self.skipped.items())]
        return ", ".join(parts)


def _owner_name(directory: Directory, complaint: Complaint, customer: Customer) -> str | None:
    """The owner the receipt names: the assignee, else whom the check will assign it to (the
    account manager while active, else the branch manager: the shared rule)."""
    member = directory.member(complaint.assignee_id)
    if member is None or not member.active:
        owner = directory.owner(customer.account_manager_id, complaint.branch_id)
        member = directory.member(owner.assignee_id)
    return member.name if member is not None else None


def queue_intake_notices(
    session: Session, complaints: Sequence[Complaint], *, now: datetime, run_id: int | None = None
) -> IntakeNotices:
    """Queue the receipts and intake alerts ``complaints`` (just recorded) call for, in the
    caller's transaction."""
    result = IntakeNotices()
    if not complaints:
        return result
    directory = load_directory(session.connection())
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(Customer.id.in_({c.customer_id for c in complaints}))
        )
    }
    facts = load_contact_facts(session.connection(), list(customers))
    notify = dict(
        session.execute(
            select(SlaPolicy.id, SlaPolicy.notify_executive_at_intake).where(
                SlaPolicy.id.in_({c.sla_policy_id for c in complaints if c.sla_policy_id})
            )
        )
        .tuples()
        .all()
    )
    executives = [directory.staff[i] for i in directory.senior_management]
    messages: list[NewMessage] = []
    for complaint in complaints:
        customer = customers[complaint.customer_id]
        zone = complaint_hours(session, complaint.calendar_id).zone.key
        owner = _owner_name(directory, complaint, customer)
        due = complaint.first_response_due_at
        title = complaint.customer_title or complaint.category
        if receipt_due(complaint.status, due, now):
            assert due is not None
            decision = decide(
                facts[customer.id], MessageKind.SERVICE, now=now, rules=_SERVICE_RULES
            )
            if customer.unsubscribed_at is not None:
                result.skipped["unsubscribed"] += 1
            elif not decision.email:
                result.skipped[decision.reason.value if decision.reason else "no_email"] += 1
            else:
                assert customer.email is not None
                messages.append(
                    NewMessage(
                        idempotency_key=receipt_key(complaint.external_id),
                        kind=RECEIPT_KIND,
                        locale=customer.locale or "zh-CN",
                        recipient_email=customer.email,
                        recipient_name=customer.name,
                        customer_id=customer.id,
                        staff_id=None,
                        context={
                            "customer_name": customer.name,
                            "reference": complaint.external_id,
                            "title": title,
                            "received_at": local_time(complaint.received_at, zone),
                            "owner_name": owner,
                            "reply_by": local_time(due, zone),
                        },
                        run_id=run_id,
                    )
                )
        if alert_due(complaint.status, notify.get(complaint.sla_policy_id or -1, False)):
            for executive in executives:
                if executive.email is None:
                    continue
                messages.append(
                    NewMessage(
                        idempotency_key=alert_key(complaint.external_id, executive.id),
                        kind=ALERT_KIND,
                        locale=executive.locale or "zh-CN",
                        recipient_email=executive.email,
                        recipient_name=executive.name,
                        customer_id=None,
                        staff_id=executive.id,
                        context={
                            "recipient_name": executive.name,
                            "reference": complaint.external_id,
                            "customer_name": customer.name,
                            "customer_class": customer.abc_class.value
                            if customer.abc_class
                            else None,
                            "severity": complaint.severity.value,
                            "category": complaint.category,
                            "title": title,
                            "received_at": local_time(complaint.received_at, zone),
                            "owner_name": owner,
                            "first_response_due_at": local_time(due, zone) if due else None,
                            "resolution_due_at": local_time(complaint.resolution_due_at, zone)
                            if complaint.resolution_due_at
                            else None,
                        },
                        run_id=run_id,
                    )
                )
    if messages:
        known = queued_keys(session.connection(), [m.idempotency_key for m in messages])
        fresh = [m for m in messages if m.idempotency_key not in known]
        enqueue(session, messages, now=now)
        kinds = Counter(m.kind for m in fresh)
        result.receipts, result.alerts = kinds[RECEIPT_KIND], kinds[ALERT_KIND]
        result.already_queued = len(messages) - len(fresh)
    return result


def recompute(
    session: Session,
    complaint_id: int,
    *,
    at: datetime,
    actor_id: int | None,
    source: EventSource,
) -> bool:
    """Re-copy the targets of the policy in force onto open complaint ``complaint_id`` and
    re-derive its due times; a ``recompute`` event records it. ``False`` (nothing written)
    when the complaint is closed or its targets are already those in force."""
    from tasks.common.write_lock import get_for_update

    complaint = get_for_update(session, Complaint, complaint_id)
    if complaint is None:
        raise ComplaintNotFoundError(f"no complaint with id {complaint_id}")
    if complaint.status not in OPEN_STATES:
        return False
    before = _target_values(complaint)
    abc = session.scalar(select(Customer.abc_class).where(Customer.id == complaint.customer_id))
    copy_targets(session, complaint, abc)
    after = _target_values(complaint)
    if after == before:
        return False
    changed = ", ".join(
        f"{name} {old}->{new}"
        for name, old, new in zip(_TARGET_FIELDS, before, after, strict=True)
        if old != new
    )
    session.add(
        ComplaintEvent(
            complaint_id=complaint.id,
            at=at,
            from_status=complaint.status,
            to_status=complaint.status,
            actor_id=actor_id,
            note=f"targets recomputed: {changed}"[:2000],
            kind=ComplaintEventKind.RECOMPUTE,
            source=source,
            recorded_at=utcnow(),
            detail_key=f"policy:{complaint.sla_policy_id}",
        )
    )
    refresh(session, complaint, complaint.assignee_id)
    return True


_TARGET_FIELDS = (
    "sla_policy_id",
    "first_response_minutes",
    "resolution_minutes",
    "warn_pct",
    "assignee_pct",
    "branch_pct",
    "region_pct",
    "executive_pct",
    "calendar_id",
)


def _target_values(complaint: Complaint) -> tuple[object, ...]:
    return tuple(getattr(complaint, name) for name in _TARGET_FIELDS)


# A resolved or closed complaint this recent is reopened by new feedback, an older one is not.
REOPEN_WINDOW = timedelta(days=30)
SOURCE_CATEGORY = "客户反馈"
_ACTIVE = (
    ComplaintStatus.NEW,
    ComplaintStatus.ACKNOWLEDGED,
    ComplaintStatus.IN_PROGRESS,
    ComplaintStatus.WAITING_ON_CUSTOMER,
)
_DONE = (ComplaintStatus.RESOLVED, ComplaintStatus.VERIFIED, ComplaintStatus.CLOSED)


class SourceEffect(StrEnum):
    EXISTING = "existing"  # this source was recorded already: nothing written
    NOTED = "noted"
    REOPENED = "reopened"
    OPENED = "opened"


@dataclass(frozen=True)
class FromSource:
    effect: SourceEffect
    complaint_id: int
    reference: str


def source_ref(source_kind: str, source_id: int | str) -> str:
    """How a complaint, or an event on one, names the feedback that raised it."""
    return f"{ComplaintSource(source_kind).value}:{source_id}"[:60]


def complaint_of_source(
    session: Session, customer_id: int, source_kind: str, source_id: int | str
) -> Complaint | None:
    """The complaint that feedback ``<kind>:<id>`` was recorded on (opened it, or a note or a
    reopen event names it), or None: what ``open_or_reopen_from_source`` did with it."""
    source = ComplaintSource(source_kind)
    ref = source_ref(source_kind, source_id)
    return session.scalar(
        select(Complaint).where(Complaint.source == source, Complaint.source_ref == ref)
    ) or session.scalar(
        select(Complaint)
        .join(ComplaintEvent, ComplaintEvent.complaint_id == Complaint.id)
        .where(Complaint.customer_id == customer_id, ComplaintEvent.detail_key == ref)
        .limit(1)
    )


def open_or_reopen_from_source(
    session: Session,
    customer_id: int,
    source_kind: str,
    source_id: int | str,
    text: str,
    now: datetime,
) -> FromSource:
    """Record a customer's negative feedback (e.g. a detractor's survey comment marked as a
    complaint: ``source_kind`` ``survey``) as complaint work, in the caller's transaction
    (四个不漏: every problem recorded), linked to what raised it (``<kind>:<id>``):

    1. that source was recorded already (a complaint or an event names it): nothing new;
    2. the customer has a complaint still being worked: a ``note`` event on the latest;
    3. else their latest complaint was resolved, verified or closed within ``REOPEN_WINDOW``:
       it is reopened (back to in progress, counted by the dissatisfaction rate);
    4. else a new complaint (source ``source_kind``, ``source_ref`` ``<kind>:<id>``, the text
       as its internal description) with its intake notices (receipt, senior management).

    ``text`` is what the customer wrote: internal, never quoted to customers."""
    source = ComplaintSource(source_kind)
    ref = source_ref(source_kind, source_id)
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"no customer with id {customer_id}")
    known = complaint_of_source(session, customer_id, source_kind, source_id)
    if known is not None:
        return FromSource(SourceEffect.EXISTING, known.id, known.external_id)
    note = f"{ref}: {text}"[:2000] if text else ref
    latest = select(Complaint).where(Complaint.customer_id == customer_id)
    latest = latest.order_by(Complaint.received_at.desc(), Complaint.id.desc()).limit(1)
    working = session.scalar(latest.where(Complaint.status.in_(_ACTIVE)))
    if working is not None:
        locked = get_for_update(session, Complaint, working.id)
        assert locked is not None
        session.add(
            ComplaintEvent(
                complaint_id=locked.id,
                at=now,
                from_status=locked.status,
                to_status=locked.status,
                note=note,
                kind=ComplaintEventKind.NOTE,
                source=EventSource.FLOW,
                recorded_at=utcnow(),
                detail_key=ref,
            )
        )
        session.flush()
        return FromSource(SourceEffect.NOTED, locked.id, locked.external_id)
    done = session.scalar(latest.where(Complaint.status.in_(_DONE)))
    last_done = done.closed_at or done.verified_at or done.resolved_at if done else None
    if done is not None and last_done is not None and now - last_done <= REOPEN_WINDOW:
        reopened = apply_event(
            session, done.id, Transition.REOPEN, now, None, EventSource.FLOW, note, ref
        )
        return FromSource(SourceEffect.REOPENED, reopened.id, reopened.external_id)
    complaint = open_with_reference(
        session,
        now,
        lambda reference: Intake(
            external_id=reference,
            customer_id=customer_id,
            branch_id=customer.branch_id,
            category=SOURCE_CATEGORY,
            severity=Severity.NORMAL,
            received_at=now,
            description=text,
            source=source,
            source_ref=ref,
        ),
        source=EventSource.FLOW,
        note=note,
    )
    queue_intake_notices(session, [complaint], now=now)
    return FromSource(SourceEffect.OPENED, complaint.id, complaint.external_id)


__all__ = [
    "FromSource",
    "IntakeNotices",
    "SourceEffect",
    "complaint_of_source",
    "new_reference",
    "open_or_reopen_from_source",
    "open_with_reference",
    "queue_intake_notices",
    "recompute",
    "source_ref",
]
