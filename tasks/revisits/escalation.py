"""IO for the revisits flow: escalate revisits still open N days after due (每级只通知一次).

"Due" is the day a revisit is planned for (``planned_for``, within its manager's capacity; its
due date when it has none). Open ``N`` days after that -> the branch manager; another ``N``
days -> the region manager (the shared escalation ladder,
``tasks.revisits.rules.planning.overdue_ladder``). The tiers reached are
the revisit's ``branch_escalated_at`` / ``region_escalated_at``, written in the same transaction as
the outbox rows (each only while still empty), and each recipient gets one email per tier and day
(idempotency key), so re-runs add nothing.
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
from tasks.common.run_context import RunCounts
from tasks.mail.outbox import NewMessage, enqueue
from tasks.revisits.planning import PlanningContext
from tasks.revisits.rules.capacity import planned_day
from tasks.revisits.rules.planning import overdue_ladder
from tasks.rules.escalation_ladder import Progress

_OVERDUE = text(
    """
    SELECT v.id, v.customer_id, v.abc_class, v.channel, v.due_on, v.planned_for,
           v.branch_escalated_at IS NOT NULL AS branch_done,
           v.region_escalated_at IS NOT NULL AS region_done,
           v.assignee_id, v.needs_reassignment, c.name AS customer_name, c.branch_id,
           b.name AS branch_name, r.name AS region_name,
           COALESCE(r.code, '-') AS region_code
    FROM revisits v
    JOIN customers c ON c.id = v.customer_id
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    WHERE v.status = 'open' AND v.region_escalated_at IS NULL AND v.due_on <= :latest_due
      AND (v.outcome IS NULL OR v.outcome <> 'email_queued')
      AND COALESCE(v.planned_for, v.due_on) <= :latest_due
    ORDER BY v.id
    """
)

# One statement per tier: a tier's timestamp is written once, never moved.
_RECORD = {
    tier: text(
        f"UPDATE revisits SET {tier.value}_escalated_at = :now "
        f"WHERE id = :id AND {tier.value}_escalated_at IS NULL"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    for tier in (EscalationTier.BRANCH, EscalationTier.REGION)
}


def escalate_overdue(
    engine: Engine,
    ctx: PlanningContext,
    *,
    outcome_url: Callable[[int, int], str],
    run_id: int | None,
    dry_run: bool,
) -> RunCounts:
    """Escalate every overdue open revisit by the tiers it has newly reached."""
    counts = RunCounts()
    directory = ctx.directory
    org = directory.org()
    ladders = {abc: overdue_ladder(c.overdue_after_days) for abc, c in ctx.cadences.items()}
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
        updates: dict[EscalationTier, list[dict[str, Any]]] = defaultdict(list)
        emails: dict[int, str] = {}
        for row in rows:
            # Counted from the day it was planned for (capacity), not the day it fell due.
            due_on = planned_day(
                raw_date(row.due_on), raw_date(row.planned_for) if row.planned_for else None
            )
            reached = {
                tier.value
                for tier, done in (
                    (EscalationTier.BRANCH, row.branch_done),
                    (EscalationTier.REGION, row.region_done),
                )
                if done
            }
            notices = ladders[AbcClass(row.abc_class)].due(
                Progress(elapsed=ctx.as_of - due_on),
                reached,
                directory.posts(row.assignee_id, row.branch_id),
                org,
            )
            for notice in notices:
                tier = EscalationTier(notice.tier.name)
                # Reached even when nobody can be told: reported, and not retried every day.
                updates[tier].append({"id": row.id, "now": ctx.now})
                counts.add(row.region_code, f"escalated:{tier.value}")
                scope = row.branch_name if tier is EscalationTier.BRANCH else row.region_name
                recipient = notice.recipient_id
                address = directory.member(recipient)
                # Never to someone who left (the ladder skips them; this is the last guard).
                if (
                    recipient is None
                    or address is None
                    or not address.active
                    or address.email is None
                ):
                    counts.add(row.region_code, "escalation_unnotified:no_recipient")
                    continue
                emails[recipient] = address.email
                info = context[row.customer_id]
                assignee = directory.member(row.assignee_id)
                items[(tier, recipient)].append(
                    {
                        "customer_name": row.customer_name,
                        "customer_class": row.abc_class,
                        "account_manager_name": assignee.name if assignee else "-",
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
                scope_names.setdefault((tier, recipient), scope or "-")
        messages = [
            NewMessage(
                idempotency_key=f"revisit_escalation:{ctx.as_of}:{tier.value}:staff:{rid}",
                kind="revisit_escalation",
                locale=directory.staff[rid].locale,
                recipient_email=emails[rid],
                recipient_name=directory.staff[rid].name,
                customer_id=None,
                staff_id=rid,
                context={
                    "recipient_name": directory.staff[rid].name,
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
            for tier, params in updates.items():
                conn.execute(_RECORD[tier], params)
            result = enqueue(session, messages, now=ctx.now)
            counts.add("-", "escalation_emails", result.inserted)
            session.commit()
        elif dry_run:
            counts.add("-", "escalation_emails", len(messages))
    finally:
        session.close()
    return counts
