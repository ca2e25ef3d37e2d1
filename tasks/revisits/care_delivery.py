"""A care email completes its revisit when the relay accepts it, not when it is queued.

Planning (and ``queue_care_emails``) leaves the revisit open with ``outcome = 'email_queued'``
(``CARE_QUEUED``): the digest and escalation skip it, nothing re-queues it. This step of the
revisits flow reads what delivery settled, in SQL, and finishes those revisits:

* the care email was sent (250): the revisit is done at the email's ``sent_at`` and the contact
  recorded at that time (which starts the next cadence);
* it failed permanently or was suppressed (nothing sent, nothing pending): the revisit is
  reopened as a phone call for its account manager, and the failed attempt is recorded;
* still pending or sending: left as it is for the next run.

Why a step here rather than in delivery's settlement transaction: the outbox row names the
customer, not the revisit (the email is built before the revisit has an id), and delivery's
settlement is the hot, crash-tested path shared by every kind of email; a set-based step that
re-derives the revisit's state from the outbox is idempotent, needs no link column, and cannot
disagree with the outbox after a crash. The completion time is the 250's, whenever it is read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, text

from crm_db.bulk import driver_timestamp, insert_rows
from crm_db.types import raw_utc_datetime
from tasks.common.run_context import RunCounts
from tasks.common.write_lock import write_transaction
from tasks.revisits.care import CARE_CONTACT_NOTE, CARE_FAILED_NOTE, CARE_KIND, CARE_QUEUED

# Open revisits waiting for their care email, with what delivery made of it: the first 250 of a
# care email queued for the customer since the revisit was created, and whether one is still in
# flight. In id batches.
_WAITING = text(
    f"""
    SELECT v.id, v.customer_id, v.assignee_id, COALESCE(r.code, '-') AS region_code,
           (SELECT MIN(e.sent_at) FROM email_outbox e
            WHERE e.customer_id = v.customer_id AND e.kind = :kind AND e.status = 'sent'
              AND e.created_at >= v.created_at) AS sent_at,
           EXISTS (SELECT 1 FROM email_outbox e
                   WHERE e.customer_id = v.customer_id AND e.kind = :kind
                     AND e.status IN ('pending', 'sending')
                     AND e.created_at >= v.created_at) AS in_flight
    FROM revisits v
    JOIN customers c ON c.id = v.customer_id
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    WHERE v.status = 'open' AND v.outcome = '{CARE_QUEUED}' AND v.id > :after
    ORDER BY v.id
    LIMIT :limit
    """
).bindparams(bindparam("kind", value=CARE_KIND))

_COMPLETE = text(
    "UPDATE revisits SET status = 'done', outcome = 'email_sent', completed_at = :at "
    f"WHERE id = :id AND status = 'open' AND outcome = '{CARE_QUEUED}'"
)
# Reopened as a call: the digest lists it again for its manager, and it escalates as usual.
_REOPEN_AS_CALL = text(
    "UPDATE revisits SET channel = 'phone', outcome = NULL "
    f"WHERE id = :id AND status = 'open' AND outcome = '{CARE_QUEUED}'"
)
_CONTACT_COLUMNS = (
    "customer_id",
    "staff_id",
    "channel",
    "outcome",
    "occurred_at",
    "revisit_id",
    "notes",
)


def settle_care_revisits(
    engine: Engine, *, now: datetime, dry_run: bool, batch: int = 5000
) -> RunCounts:
    """Finish the revisits whose care email delivery settled (see the module docstring).
    Counts ``care_delivered`` and ``care_failed_phone`` per region."""
    counts = RunCounts()
    after = 0
    while True:
        with write_transaction(engine) as conn:
            rows = conn.execute(_WAITING, {"after": after, "limit": batch}).all()
            if not rows:
                break
            after = rows[-1].id
            sent = [r for r in rows if r.sent_at is not None]
            failed = [r for r in rows if r.sent_at is None and not r.in_flight]
            for r in sent:
                counts.add(r.region_code, "care_delivered")
            for r in failed:
                counts.add(r.region_code, "care_failed_phone")
            if dry_run:
                continue
            dialect = conn.dialect.name
            contacts: list[tuple[Any, ...]] = []
            if sent:
                conn.execute(
                    _COMPLETE, [{"id": r.id, "at": _stamp(r.sent_at, dialect)} for r in sent]
                )
                contacts += [
                    (
                        r.customer_id,
                        r.assignee_id,
                        "email",
                        "completed",
                        _stamp(r.sent_at, dialect),
                        r.id,
                        CARE_CONTACT_NOTE,
                    )
                    for r in sent
                ]
            if failed:
                conn.execute(_REOPEN_AS_CALL, [{"id": r.id} for r in failed])
                stamp = driver_timestamp(now, dialect)
                contacts += [
                    (
                        r.customer_id,
                        r.assignee_id,
                        "email",
                        "no_answer",
                        stamp,
                        r.id,
                        CARE_FAILED_NOTE,
                    )
                    for r in failed
                ]
            insert_rows(conn, "contact_history", _CONTACT_COLUMNS, contacts)
        if len(rows) < batch:
            break
    return counts


def _stamp(value: Any, dialect: str) -> Any:
    return driver_timestamp(raw_utc_datetime(value), dialect)


__all__ = ["settle_care_revisits"]
