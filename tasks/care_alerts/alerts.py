"""IO for care alerts: ``raise_alerts`` writes a batch of triggers' alerts, their urgent revisits
and the alert emails, in the caller's transaction (all or nothing).

The surveys flow calls it with its detractors and low scores; the churn early warning
(``tasks/care_alerts/churn.py``) with the customers whose spend fell. Per batch, set-based: one
read of the keys already alerted, one of the customers' last churn alerts, one of the
customers, one of their open revisits (locked), one of their taken revisit days, the customer
context of the emails (``tasks.common.customer_context``), then the inserts.

- **Alerts.** One ``care_alerts`` row per key (``Trigger.key``): a key already there is a
  re-run and is skipped (``duplicate``), as is a churn warning within ``churn.dedup_days`` of
  the customer's last (``churn_recent``).
- **The urgent revisit** goes through the revisit machinery: the customer's open revisit (one
  per customer) is made urgent - brought forward to the urgent day, a call if it was a care
  email, ``reason = 'care_alert'``, the alert in its notes - or a new open one is created, due
  and planned on the urgent day (``care.urgent_revisit_working_days`` working days on the
  branch's calendar). It is assigned as planning assigns (``Directory.owner``); the revisits
  flow's digest lists it and its escalation counts from it.
- **Emails.** One ``care_alert`` email per recipient per batch listing their alerts; the
  account manager (or, left, the first reachable manager up their chain) and for A class the
  region manager too (``tasks.care_alerts.rules.recipients``). Outbox key
  ``care_alert:<as_of>:staff:<id>:a<first alert id>``: unique per recipient and day, and per
  batch - a second batch on the same day (the surveys flow after the churn check) is not lost
  to the first's key, and a re-run inserts no alerts, so no email.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from crm_core.masking import mask_phone
from crm_db.enums import CareAlertKind, ContactChannel, RevisitStatus
from crm_db.models import CareAlert, Customer, Revisit
from crm_db.policy_defaults import (
    CARE_URGENT_REVISIT_WORKING_DAYS,
    CHURN_DEDUP_DAYS,
    CHURN_DROP_RATIO,
    CHURN_WINDOW_DAYS,
)
from crm_db.session import session_scope
from tasks.care_alerts.rules import (
    URGENT_REASON,
    AlertPolicy,
    SkipReason,
    Trigger,
    churn_allowed,
    dedup,
    free_urgent_day,
    recipients,
    revisit_change,
    urgent_due,
)
from tasks.common.calendars import load_branch_work_calendar
from tasks.common.customer_context import CustomerContext, load_customer_context
from tasks.common.directory import Directory
from tasks.common.policies import setting
from tasks.common.write_lock import begin_write, for_update
from tasks.mail.outbox import NewMessage, enqueue
from tasks.revisits.care import CARE_QUEUED
from tasks.revisits.rules.planning import combined_notes

ALERT_KIND = "care_alert"  # the email kind
URGENT_CHANNEL = ContactChannel.PHONE  # a new urgent revisit is a call (an A-class visit stays)
MAX_COMMENT_CHARS = 1000  # of the customer's words quoted in the alert email
MAX_EMAIL_ITEMS = 50  # alerts listed in one email; the rest are counted (``more_count``)
_CHUNK = 1000


def load_policy(session: Session) -> AlertPolicy:
    """The ``churn.*`` and ``care.*`` policy rows (the defaults where a row is missing)."""
    return AlertPolicy(
        churn_drop_ratio=setting(session, CHURN_DROP_RATIO),
        churn_window_days=setting(session, CHURN_WINDOW_DAYS),
        churn_dedup_days=setting(session, CHURN_DEDUP_DAYS),
        urgent_working_days=setting(session, CARE_URGENT_REVISIT_WORKING_DAYS),
    )


@dataclass
class AlertCounts:
    """What a batch (or a run) did: the artifact's and the ledger's figures."""

    triggers: Counter[str] = field(default_factory=Counter)  # by kind
    alerts: Counter[str] = field(default_factory=Counter)  # written, by kind
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    revisits_created: int = 0
    revisits_updated: int = 0
    emails: int = 0
    alert_ids: list[int] = field(default_factory=list)

    def merge(self, other: AlertCounts) -> None:
        self.triggers.update(other.triggers)
        self.alerts.update(other.alerts)
        self.skipped.update(other.skipped)
        self.revisits_created += other.revisits_created
        self.revisits_updated += other.revisits_updated
        self.emails += other.emails
        self.alert_ids.extend(other.alert_ids)

    def totals(self) -> dict[str, int]:
        """Flat ledger keys."""
        flat = {
            "alerts": sum(self.alerts.values()),
            "revisits_created": self.revisits_created,
            "revisits_updated": self.revisits_updated,
            "emails": self.emails,
        }
        flat.update({f"triggers_{k}": n for k, n in sorted(self.triggers.items())})
        flat.update({f"skipped_{k}": n for k, n in sorted(self.skipped.items())})
        return flat

    def rows(self) -> list[dict[str, str | int]]:
        """The artifact's table: one row per measure."""
        rows: list[dict[str, str | int]] = [
            {"measure": f"triggers {k}", "count": n} for k, n in sorted(self.triggers.items())
        ]
        rows += [{"measure": f"alerts {k}", "count": n} for k, n in sorted(self.alerts.items())]
        rows += [
            {"measure": "urgent revisits created", "count": self.revisits_created},
            {"measure": "open revisits made urgent", "count": self.revisits_updated},
            {"measure": "alert emails queued", "count": self.emails},
        ]
        rows += [{"measure": f"skipped {k}", "count": n} for k, n in sorted(self.skipped.items())]
        return rows


@dataclass(frozen=True, slots=True)
class _Customer:
    id: int
    name: str
    phone: str | None
    abc_class: Any
    branch_id: int | None
    account_manager_id: int | None


def raise_alerts(
    session: Session,
    triggers: Sequence[Trigger],
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    directory: Directory,
    policy: AlertPolicy,
    run_id: int | None = None,
    dry_run: bool = False,
    notify: bool = True,
) -> AlertCounts:
    """Write the alerts ``triggers`` imply, their urgent revisits and emails, in ``session``'s
    transaction (the caller commits; an error leaves nothing half-written). A dry run counts
    what it would do and writes nothing. ``notify=False`` leaves the emails to a later
    ``queue_pending_emails`` (one email per recipient for a run written in several batches).

    Concurrency: start the transaction as a writer (``tasks.common.write_lock.begin_write``) so
    SQLite serialises it; on PostgreSQL the customers' open revisits are locked, and a writer
    that got in first (the same key, or a new open revisit) fails this transaction with an
    ``IntegrityError``: run it again (a Prefect retry does), it then skips what exists."""
    counts = AlertCounts()
    for trigger in triggers:
        counts.triggers[trigger.kind.value] += 1
    kept, repeated = dedup(triggers)
    if repeated:
        counts.skipped[SkipReason.DUPLICATE.value] += repeated
    kept = _new_only(session, kept, counts)
    kept = _churn_allowed(session, kept, as_of, policy, counts)
    if not kept:
        return counts
    customers = _customers(session, {t.customer_id for t in kept})
    org = directory.org()
    # Who gets each alert (the emails) and whom its revisit is assigned to.
    to_staff: dict[str, tuple[int, ...]] = {}
    for trigger in kept:
        customer = customers[trigger.customer_id]
        branch_id = customer.branch_id
        found = recipients(
            abc_class=customer.abc_class,
            account_manager_id=customer.account_manager_id,
            branch_manager_id=directory.branch_manager(branch_id),
            region_manager_id=directory.region_manager(directory.region_of(branch_id)),
            org=org,
        )
        to_staff[trigger.key] = found.staff_ids
        if not found.staff_ids:
            counts.skipped[SkipReason.NO_RECIPIENT.value] += 1
    if dry_run:
        for trigger in kept:
            counts.alerts[trigger.kind.value] += 1
        counts.emails = len({s for ids in to_staff.values() for s in ids})
        return counts
    revisits, deadlines = _urgent_revisits(
        session, kept, customers, as_of, now, directory, policy, counts
    )
    rows: list[CareAlert] = []
    for trigger in kept:
        revisit = revisits.get(trigger.customer_id)
        row = CareAlert(
            key=trigger.key,
            customer_id=trigger.customer_id,
            kind=trigger.kind,
            source=trigger.source,
            as_of=as_of,
            score=trigger.score,
            details={
                "comment": trigger.comment,
                "recent_fen": trigger.recent_fen,
                "previous_fen": trigger.previous_fen,
            },
            revisit_id=None if revisit is None else revisit.id,
            follow_up_due=None if revisit is None else deadlines[trigger.customer_id],
            recipients=len(to_staff[trigger.key]),
            run_id=run_id,
            created_at=now,
        )
        session.add(row)
        rows.append(row)
        counts.alerts[trigger.kind.value] += 1
    session.flush()
    counts.alert_ids.extend(r.id for r in rows)
    if notify:
        counts.emails = queue_pending_emails(
            session,
            as_of=as_of,
            now=now,
            timezone=timezone,
            directory=directory,
            policy=policy,
            run_id=run_id,
            alert_ids=counts.alert_ids,
        )
    return counts


def queue_pending_emails(
    session: Session,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    directory: Directory,
    policy: AlertPolicy,
    run_id: int | None,
    alert_ids: Sequence[int] | None = None,
) -> int:
    """Queue one ``care_alert`` email per recipient listing the alerts not yet notified
    (``notified_at`` NULL; only ``alert_ids`` when given), mark them notified, in ``session``'s
    transaction; returns the emails queued. Recipients are decided now, from ``directory``."""
    query = (
        select(
            CareAlert.id,
            CareAlert.customer_id,
            CareAlert.kind,
            CareAlert.score,
            CareAlert.details,
            Revisit.due_on,
            Revisit.channel,
        )
        .outerjoin(Revisit, Revisit.id == CareAlert.revisit_id)
        .where(CareAlert.notified_at.is_(None))
        .order_by(CareAlert.id)
    )
    if alert_ids is not None:
        if not alert_ids:
            return 0
        query = query.where(CareAlert.id.in_(sorted(alert_ids)))
    pending = [_Pending(*row) for row in session.execute(query)]
    if not pending:
        return 0
    customers = _customers(session, {p.customer_id for p in pending})
    contexts: dict[int, CustomerContext] = {}
    wanted = sorted(customers)
    for start in range(0, len(wanted), _CHUNK):
        contexts.update(
            load_customer_context(
                session.connection(), wanted[start : start + _CHUNK], as_of=as_of, timezone=timezone
            )
        )
    messages = _emails(pending, customers, contexts, as_of, directory, policy, run_id)
    queued = enqueue(session, messages, now=now).inserted
    ids = [p.id for p in pending]
    for start in range(0, len(ids), _CHUNK):
        part = ids[start : start + _CHUNK]
        session.execute(update(CareAlert).where(CareAlert.id.in_(part)).values(notified_at=now))
    return queued


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    customer_id: int
    kind: CareAlertKind
    score: int | None
    details: dict[str, Any]
    revisit_due: date | None
    revisit_channel: ContactChannel | None


def _new_only(session: Session, triggers: list[Trigger], counts: AlertCounts) -> list[Trigger]:
    """Leave out the keys already alerted (a re-run, or another run got there first)."""
    keys = [t.key for t in triggers]
    existing: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        existing.update(
            session.scalars(
                select(CareAlert.key).where(CareAlert.key.in_(keys[start : start + _CHUNK]))
            )
        )
    if existing:
        counts.skipped[SkipReason.DUPLICATE.value] += sum(1 for k in keys if k in existing)
    return [t for t in triggers if t.key not in existing]


def _churn_allowed(
    session: Session,
    triggers: list[Trigger],
    as_of: date,
    policy: AlertPolicy,
    counts: AlertCounts,
) -> list[Trigger]:
    """Leave out churn warnings for customers alerted for churn within the dedup window."""
    ids = sorted({t.customer_id for t in triggers if t.kind is CareAlertKind.CHURN})
    last: dict[int, date] = {}
    for start in range(0, len(ids), _CHUNK):
        last.update(
            session.execute(
                select(CareAlert.customer_id, func.max(CareAlert.as_of))
                .where(
                    CareAlert.customer_id.in_(ids[start : start + _CHUNK]),
                    CareAlert.kind == CareAlertKind.CHURN,
                )
                .group_by(CareAlert.customer_id)
            )
            .tuples()
            .all()
        )
    kept: list[Trigger] = []
    for trigger in triggers:
        if trigger.kind is CareAlertKind.CHURN and not churn_allowed(
            last.get(trigger.customer_id), as_of, policy.churn_dedup_days
        ):
            counts.skipped[SkipReason.CHURN_RECENT.value] += 1
            continue
        kept.append(trigger)
    return kept


def _customers(session: Session, ids: Iterable[int]) -> dict[int, _Customer]:
    wanted = sorted(ids)
    found: dict[int, _Customer] = {}
    for start in range(0, len(wanted), _CHUNK):
        for row in session.execute(
            select(
                Customer.id,
                Customer.name,
                Customer.phone,
                Customer.abc_class,
                Customer.branch_id,
                Customer.account_manager_id,
            ).where(Customer.id.in_(wanted[start : start + _CHUNK]))
        ):
            found[row.id] = _Customer(*row)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ValueError(f"care alert trigger: customer {missing[0]} does not exist")
    return found


def _alert_note(trigger: Trigger) -> str:
    """Why the revisit is urgent, for whoever calls (the customer's words included: staff read
    the notes, customers never do)."""
    head = f"care alert: {trigger.kind.value}"
    if trigger.score is not None:
        head += f" (score {trigger.score})"
    return f"{head}\n{trigger.comment}" if trigger.comment else head


def _urgent_revisits(
    session: Session,
    triggers: list[Trigger],
    customers: dict[int, _Customer],
    as_of: date,
    now: datetime,
    directory: Directory,
    policy: AlertPolicy,
    counts: AlertCounts,
) -> tuple[dict[int, Revisit], dict[int, date]]:
    """Per customer of ``triggers``: its open revisit made urgent, or a new urgent one (none
    when nobody can be assigned); and per customer the follow-up deadline."""
    by_customer: dict[int, list[Trigger]] = defaultdict(list)
    for trigger in triggers:
        by_customer[trigger.customer_id].append(trigger)
    ids = sorted(by_customer)
    open_revisits: dict[int, Revisit] = {}
    taken: dict[int, set[date]] = defaultdict(set)
    for start in range(0, len(ids), _CHUNK):
        part = ids[start : start + _CHUNK]
        # Locked: a manager recording an outcome or a care email's delivery waits for this.
        for revisit in session.scalars(
            for_update(
                select(Revisit).where(
                    Revisit.customer_id.in_(part), Revisit.status == RevisitStatus.OPEN
                )
            )
        ):
            open_revisits[revisit.customer_id] = revisit
        for customer_id, day in session.execute(
            select(Revisit.customer_id, Revisit.due_on).where(
                Revisit.customer_id.in_(part), Revisit.due_on > as_of
            )
        ).tuples():
            taken[customer_id].add(day)
    calendars: dict[int | None, Any] = {}
    result: dict[int, Revisit] = {}
    deadlines: dict[int, date] = {}
    for customer_id in ids:
        customer = customers[customer_id]
        notes = "\n\n".join(_alert_note(t) for t in by_customer[customer_id])
        assignment = directory.owner(customer.account_manager_id, customer.branch_id)
        if customer.branch_id not in calendars:
            calendars[customer.branch_id] = load_branch_work_calendar(session, customer.branch_id)
        deadlines[customer_id] = urgent_due(
            as_of, calendars[customer.branch_id], policy.urgent_working_days
        )
        current = open_revisits.get(customer_id)
        # The open revisit's own day is free for it (it moves, it does not collide).
        days = taken[customer_id] - ({current.due_on} if current is not None else set())
        urgent_on = free_urgent_day(
            as_of, calendars[customer.branch_id], policy.urgent_working_days, days
        )
        change = revisit_change(
            urgent_on=urgent_on,
            open_due_on=None if current is None else current.due_on,
            open_planned_for=None if current is None else current.planned_for,
            open_is_email=current is not None and current.channel is ContactChannel.EMAIL,
        )
        if current is not None:
            if change.channel_to_phone:
                current.channel = URGENT_CHANNEL
                if current.outcome == CARE_QUEUED:
                    # Its care email's delivery would close it: the call is what is due now.
                    current.outcome = None
            if assignment.assignee_id is not None and not _active(directory, current.assignee_id):
                current.assignee_id = assignment.assignee_id
                current.needs_reassignment = assignment.needs_reassignment
            current.due_on, current.planned_for = change.due_on, change.planned_for
            current.reason = URGENT_REASON
            current.notes = combined_notes(current.notes, notes)
            counts.revisits_updated += 1
            result[customer_id] = current
            continue
        if customer.abc_class is None:
            counts.skipped[SkipReason.NO_CLASS.value] += 1
            continue
        if assignment.skip is not None:
            counts.skipped[SkipReason.NO_ASSIGNEE.value] += 1
            continue
        revisit = Revisit(
            customer_id=customer_id,
            assignee_id=assignment.assignee_id,
            abc_class=customer.abc_class,
            channel=URGENT_CHANNEL,
            due_on=change.due_on,
            planned_for=change.planned_for,  # urgent: never deferred by the capacity planner
            status=RevisitStatus.OPEN,
            needs_reassignment=assignment.needs_reassignment,
            reason=URGENT_REASON,
            notes=notes,
            created_at=now,
        )
        session.add(revisit)
        counts.revisits_created += 1
        result[customer_id] = revisit
    session.flush()
    return result, deadlines


def _active(directory: Directory, staff_id: int | None) -> bool:
    member = directory.member(staff_id)
    return member is not None and member.active


def _yuan(fen: int | None) -> float | None:
    return None if fen is None else round(fen / 100, 2)


def _emails(
    pending: list[_Pending],
    customers: dict[int, _Customer],
    contexts: dict[int, CustomerContext],
    as_of: date,
    directory: Directory,
    policy: AlertPolicy,
    run_id: int | None,
) -> list[NewMessage]:
    """One email per recipient listing their alerts (in alert order)."""
    org = directory.org()
    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    first_alert: dict[int, int] = {}
    for alert in pending:
        customer = customers[alert.customer_id]
        context = contexts.get(alert.customer_id, CustomerContext())
        details = alert.details or {}
        branch_id = customer.branch_id
        to_staff = recipients(
            abc_class=customer.abc_class,
            account_manager_id=customer.account_manager_id,
            branch_manager_id=directory.branch_manager(branch_id),
            region_manager_id=directory.region_manager(directory.region_of(branch_id)),
            org=org,
        ).staff_ids
        item = {
            "customer_name": customer.name,
            "customer_class": None if customer.abc_class is None else customer.abc_class.value,
            "phone": mask_phone(customer.phone) or None,
            "kind": alert.kind.value,
            "score": alert.score,
            "comment": (details.get("comment") or "")[:MAX_COMMENT_CHARS] or None,
            "recent_yuan": _yuan(details.get("recent_fen")),
            "previous_yuan": _yuan(details.get("previous_fen")),
            "revisit_due": None if alert.revisit_due is None else alert.revisit_due.isoformat(),
            "revisit_channel": None
            if alert.revisit_channel is None
            else alert.revisit_channel.value,
            "last_contact_date": (
                None if context.last_contact_date is None else context.last_contact_date.isoformat()
            ),
            "last_contact_outcome": context.last_contact_outcome,
            "open_complaints": context.open_complaints,
            "last_survey_score": context.last_survey_score,
            "trend_90d_pct": context.trend_90d_pct,
        }
        for staff_id in to_staff:
            items[staff_id].append(item)
            first_alert.setdefault(staff_id, alert.id)
    messages: list[NewMessage] = []
    for staff_id, listed in items.items():
        member = directory.member(staff_id)
        assert member is not None and member.email is not None  # recipients() checked
        messages.append(
            NewMessage(
                idempotency_key=(
                    f"{ALERT_KIND}:{as_of.isoformat()}:staff:{staff_id}:a{first_alert[staff_id]}"
                ),
                kind=ALERT_KIND,
                locale=member.locale,
                recipient_email=member.email,
                recipient_name=member.name,
                customer_id=None,
                staff_id=staff_id,
                context={
                    "recipient_name": member.name,
                    "date": as_of.isoformat(),
                    "working_days": policy.urgent_working_days,
                    "total_count": len(listed),
                    # The most urgent first would need a ranking; the first ones, in alert
                    # order, and how many more (all are in the digest and the revisit list).
                    "items": listed[:MAX_EMAIL_ITEMS],
                    "more_count": max(len(listed) - MAX_EMAIL_ITEMS, 0),
                },
                run_id=run_id,
            )
        )
    return messages


def raise_batch(
    engine: Engine,
    triggers: Sequence[Trigger],
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    directory: Directory,
    policy: AlertPolicy,
    run_id: int | None = None,
    dry_run: bool = False,
) -> AlertCounts:
    """``raise_alerts`` for one batch of a run (a churn id range, a chunk of survey answers) in
    its own write transaction, the emails left to the end of the run (``notify_pending``: one
    email per recipient for the whole run). A dry run only reads: no write lock."""
    with session_scope(engine) as session:
        if not dry_run:
            begin_write(session.connection())
        return raise_alerts(
            session,
            triggers,
            as_of=as_of,
            now=now,
            timezone=timezone,
            directory=directory,
            policy=policy,
            run_id=run_id,
            dry_run=dry_run,
            notify=False,
        )


__all__ = [
    "ALERT_KIND",
    "URGENT_REASON",
    "AlertCounts",
    "load_policy",
    "queue_pending_emails",
    "raise_alerts",
    "raise_batch",
]
