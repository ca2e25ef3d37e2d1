"""IO for the revisits flow: escalate revisits still open N days after due (每级只通知一次).

Open ``N`` days after due -> the branch manager; another ``N`` days -> the region manager. The
level reached is recorded on the revisit in the same transaction as the outbox rows, and each
recipient gets one email per tier and day (idempotency key), so re-runs add nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Engine, bindparam, text

from crm_db.enums import AbcClass, EscalationTier
from crm_db.session import session_factory
from crm_db.types import UTCDateTime, raw_date
from tasks.common.customer_context import load_customer_context
from tasks.mail.outbox import NewMessage, enqueue
from tasks.revisits.planning import PlanningContext, RangeCounts
from tasks.revisits.rules.planning import StaffMember, management_chain, overdue_tiers
from tasks.staff_directory import StaffAddress

_OVERDUE = text(
    """
    SELECT v.id, v.customer_id, v.abc_class, v.channel, v.due_on, v.escalation_level,
           v.assignee_id, v.needs_reassignment, c.name AS customer_name,
           b.manager_id AS branch_manager_id, b.name AS branch_name,
           r.manager_id AS region_manager_id, r.name AS region_name,
           COALESCE(r.code, '-') AS region_code, a.name AS assignee_name
    FROM revisits v
    JOIN customers c ON c.id = v.customer_id
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    LEFT JOIN staff a ON a.id = v.assignee_id
    WHERE v.status = 'open' AND v.escalation_level < 2 AND v.due_on <= :latest_due
    ORDER BY v.id
    """
)

_RECORD = text(
    "UPDATE revisits SET escalation_level = :level, "
    "branch_escalated_at = CASE WHEN :level >= 1 AND branch_escalated_at IS NULL "
    "THEN :now ELSE branch_escalated_at END, "
    "region_escalated_at = CASE WHEN :level >= 2 AND region_escalated_at IS NULL "
    "THEN :now ELSE region_escalated_at END "
    "WHERE id = :id AND escalation_level < :level"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _pick(candidates: list[int | None], staff: dict[int, StaffMember]) -> int | None:
    """The first candidate who is still here and can receive mail."""
    for candidate in candidates:
        member = staff.get(candidate) if candidate is not None else None
        if member is not None and member.active and member.has_email:
            return member.id
    return None


def escalate_overdue(
    engine: Engine,
    ctx: PlanningContext,
    *,
    recipients: dict[int, StaffAddress],
    outcome_url: Callable[[int, int], str],
    run_id: int | None,
    dry_run: bool,
) -> RangeCounts:
    """Escalate every overdue open revisit by the tiers it has newly reached."""
    counts = RangeCounts()
    staff = dict(ctx.staff)
    managers = {sid: m.manager_id for sid, m in staff.items()}
    min_overdue = min(c.overdue_after_days for c in ctx.cadences.values())
    latest_due = date.fromordinal(ctx.as_of.toordinal() - min_overdue)
    session = session_factory(engine)()
    try:
        conn = session.connection()
        rows = conn.execute(_OVERDUE, {"latest_due": latest_due}).all()
        context = load_customer_context(
            conn, [r.customer_id for r in rows], as_of=ctx.as_of, timezone=ctx.timezone
        )
        items: dict[tuple[EscalationTier, int], list[dict[str, Any]]] = defaultdict(list)
        scope_names: dict[tuple[EscalationTier, int], str] = {}
        updates: list[dict[str, Any]] = []
        emails: dict[int, str] = {}
        for row in rows:
            cadence = ctx.cadences[AbcClass(row.abc_class)]
            due_on = raw_date(row.due_on)
            tiers = overdue_tiers(
                due_on=due_on,
                as_of=ctx.as_of,
                overdue_after_days=cadence.overdue_after_days,
                already_escalated=row.escalation_level,
            )
            if not tiers:
                continue
            for tier in tiers:
                counts.add(row.region_code, f"escalated:{tier.value}")
                chain = management_chain(row.assignee_id, managers) if row.assignee_id else []
                if tier is EscalationTier.BRANCH:
                    candidates = [row.branch_manager_id, row.region_manager_id, *chain]
                    scope = row.branch_name or "-"
                else:
                    candidates = [row.region_manager_id, *chain[1:]]
                    scope = row.region_name or "-"
                recipient = _pick(candidates, staff)
                address = recipients.get(recipient) if recipient is not None else None
                if recipient is None or address is None or not address.email:
                    counts.add(row.region_code, "escalation_unnotified:no_recipient")
                    continue
                emails[recipient] = address.email
                info = context[row.customer_id]
                items[(tier, recipient)].append(
                    {
                        "customer_name": row.customer_name,
                        "customer_class": row.abc_class,
                        "account_manager_name": row.assignee_name or "-",
                        "channel": row.channel,
                        "due_date": due_on.isoformat(),
                        "overdue_days": (ctx.as_of - due_on).days,
                        "last_contact_date": info.last_contact_date.isoformat()
                        if info.last_contact_date
                        else None,
                        "open_complaints": info.open_complaints,
                        "outcome_url": outcome_url(row.id, recipient),
                        "needs_reassignment": bool(row.needs_reassignment),
                    }
                )
                scope_names.setdefault((tier, recipient), scope)
            level = 2 if EscalationTier.REGION in tiers else 1
            updates.append({"id": row.id, "level": level, "now": ctx.now})
        messages = [
            NewMessage(
                idempotency_key=f"revisit_escalation:{ctx.as_of}:{tier.value}:staff:{rid}",
                kind="revisit_escalation",
                locale=recipients[rid].locale,
                recipient_email=emails[rid],
                recipient_name=recipients[rid].name,
                customer_id=None,
                staff_id=rid,
                context={
                    "recipient_name": recipients[rid].name,
                    "level": tier.value,
                    "scope_name": scope_names[(tier, rid)],
                    "date": ctx.as_of.isoformat(),
                    "overdue_after_days": min_overdue,
                    "items": tier_items,
                },
                run_id=run_id,
            )
            for (tier, rid), tier_items in sorted(items.items())
        ]
        if not dry_run and updates:
            conn.execute(_RECORD, updates)
            result = enqueue(session, messages, now=ctx.now)
            counts.add("-", "escalation_emails", result.inserted)
            session.commit()
        elif dry_run:
            counts.add("-", "escalation_emails", len(messages))
    finally:
        session.close()
    return counts
