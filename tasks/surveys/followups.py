"""IO for the surveys flow, step 2: close the invitations that expired, then send the one
reminder to those still unanswered ``reminder_days`` after the invitation.

Both work on the invitations of earlier days only (an invitation of today is neither due for a
reminder nor expired), so they run beside the day's ranges. Expiry is one UPDATE; reminders go
in chunks, each chunk's status change (``reminded``) and emails in one transaction, the status
guard (``status = 'sent'``) and the outbox key (``survey_reminder:invitation:N``) making a
re-run or a concurrent run send nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, text

from crm_db.bulk import id_list
from crm_db.enums import SurveyKind
from crm_db.types import UTCDateTime, raw_utc_datetime
from tasks.common.contact_policy import FACT_COLUMNS, facts_from_row
from tasks.common.run_context import RunCounts
from tasks.mail.outbox import NewMessage, prepare
from tasks.surveys.emails import REMINDER_KIND, reminder_key, survey_context, survey_message
from tasks.surveys.invitations import SurveyContext, group
from tasks.surveys.rules.invitations import reminder_cutoff, reminder_skip

CHUNK = 5_000
_OPEN = "('pending', 'sent', 'reminded')"
_UNANSWERED = "NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.invitation_id = i.id)"

_EXPIRING = text(
    f"SELECT i.kind, i.abc_class, count(*) AS n FROM survey_invitations i "
    f"WHERE i.status IN {_OPEN} AND i.expires_at <= :now AND {_UNANSWERED} "
    "GROUP BY i.kind, i.abc_class"
).bindparams(bindparam("now", type_=UTCDateTime()))
_EXPIRE = text(
    f"UPDATE survey_invitations SET status = 'expired' WHERE status IN {_OPEN} "
    "AND expires_at <= :now AND NOT EXISTS "
    "(SELECT 1 FROM survey_responses r WHERE r.invitation_id = survey_invitations.id)"
).bindparams(bindparam("now", type_=UTCDateTime()))


def expire_invitations(engine: Engine, ctx: SurveyContext, *, dry_run: bool) -> RunCounts:
    """Close every unanswered invitation whose links have expired (``expired``, per group)."""
    counts = RunCounts()
    with engine.begin() as conn:
        for row in conn.execute(_EXPIRING, {"now": ctx.now}):
            counts.add(group(row.kind, row.abc_class), "expired", int(row.n))
        if not dry_run and counts.total("expired"):
            conn.execute(_EXPIRE, {"now": ctx.now})
    return counts


_DUE_REMINDERS = text(
    f"""
    SELECT i.id AS invitation_id, i.customer_id, i.kind, i.abc_class, i.expires_at,
           i.created_at AS invited_at, k.external_id AS complaint_reference
    FROM survey_invitations i
    LEFT JOIN complaints k ON k.id = i.complaint_id
    WHERE i.status = 'sent' AND i.created_at <= :cutoff AND i.expires_at > :now
      AND {_UNANSWERED}
    ORDER BY i.id
    """
).bindparams(bindparam("cutoff", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))
_FACTS = text(
    f"SELECT c.id, c.locale, {FACT_COLUMNS} FROM customers c WHERE c.id IN :ids"
).bindparams(id_list("ids"))
_MARK = text(
    "UPDATE survey_invitations SET status = 'reminded', reminded_at = :now "
    "WHERE id IN :ids AND status = 'sent'"
).bindparams(bindparam("now", type_=UTCDateTime()), id_list("ids"))


def send_reminders(
    engine: Engine, ctx: SurveyContext, *, run_id: int | None, dry_run: bool
) -> RunCounts:
    """The one reminder to customers who have not answered ``reminder_days`` after their
    invitation (``reminded``; ``reminder_skipped:<reason>`` when consent or the address is gone
    since - tried again on later runs until the invitation expires)."""
    counts = RunCounts()
    with engine.connect() as conn:
        due = conn.execute(
            _DUE_REMINDERS, {"cutoff": reminder_cutoff(ctx.now, ctx.rules), "now": ctx.now}
        ).all()
    for start in range(0, len(due), CHUNK):
        _remind_chunk(engine, ctx, due[start : start + CHUNK], counts, run_id, dry_run)
    return counts


def _remind_chunk(
    engine: Engine,
    ctx: SurveyContext,
    due: Sequence[Any],
    counts: RunCounts,
    run_id: int | None,
    dry_run: bool,
) -> None:
    with engine.connect() as conn:
        customers = {
            row.id: row
            for row in conn.execute(_FACTS, {"ids": sorted({r.customer_id for r in due})})
        }
    messages: list[NewMessage] = []
    ids: list[int] = []
    for r in due:
        key = group(r.kind, r.abc_class)
        customer = customers.get(r.customer_id)
        facts = facts_from_row(r.customer_id, customer) if customer is not None else None
        reason = reminder_skip(facts, now=ctx.now)
        if reason is not None:
            counts.add(key, f"reminder_skipped:{reason}")
            continue
        counts.add(key, "reminded")
        ids.append(r.invitation_id)
        expiry = raw_utc_datetime(r.expires_at)
        assert expiry is not None and customer is not None
        context = survey_context(
            customer_name=customer.name,
            kind=SurveyKind(r.kind),
            invitation_id=r.invitation_id,
            expires_at=expiry,
            # The last day the links work (they expire at the following local midnight).
            expires_on=(expiry.astimezone(ctx.timezone) - timedelta(microseconds=1)).date(),
            complaint_reference=r.complaint_reference,
        )
        messages.append(
            survey_message(
                email_kind=REMINDER_KIND,
                key=reminder_key(r.invitation_id),
                customer_id=r.customer_id,
                email=customer.email,
                name=customer.name,
                locale=customer.locale,
                context=context,
                run_id=run_id,
            )
        )
    if dry_run or not ids:
        return
    prepared = prepare(messages, now=ctx.now, dialect=engine.dialect.name)
    with engine.begin() as conn:
        conn.execute(_MARK, {"now": ctx.now, "ids": ids})
        # A reminder a concurrent run queued first has the same key: the outbox skips it.
        queued = prepared.insert(conn)
    counts.add("total", "emails", queued.inserted)


__all__ = ["expire_invitations", "send_reminders"]
