"""IO for the revisits flow: care emails to customers and the daily digest per account manager.

Care email: an open email-channel revisit that is due becomes one care email (thanks; was last
time's issue solved?) - when the customer has a deliverable address, has not opted out, and has
had no customer-facing email within the contact cap. Queuing it marks the revisit waiting for the
relay (``CARE_QUEUED``, in the same transaction); ``tasks.revisits.care_delivery`` completes it on
the 250. A capped customer is retried on a later day; one who cannot get email (opted out since,
no or undeliverable address) has the revisit made a phone call for the manager's digest.

Digest: one email per assignee per day with every open revisit planned for that day or overdue
(a revisit's planned day is its ``planned_for``, or its due date if it has none), with context
(not those waiting for their care email's delivery): the ``DIGEST_MAX_ITEMS`` most overdue in the
email, and - no silent cap - the total, how many more, and a signed link to the assignee's full
list (``crm web``'s ``/m/`` page, every open revisit). The due revisits planned for later working
days (capacity) are counted, not listed. An assignee with nothing planned for the day gets no
digest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text

from crm_core.masking import mask_phone
from crm_db.bulk import id_list
from crm_db.types import UTCDateTime, raw_date
from tasks.care_alerts.rules import URGENT_REASON
from tasks.common.contact_policy import load_contact_facts
from tasks.common.customer_context import load_care_context, load_customer_context
from tasks.common.directory import Directory
from tasks.common.owners import handed_to
from tasks.common.run_context import RunCounts
from tasks.mail.outbox import NewMessage, enqueue, queued_keys
from tasks.revisits.care import (
    CARE_QUEUED,
    NO_EMAIL_REASONS,
    CareRecipient,
    care_decision,
    care_message,
    care_signer,
)
from tasks.revisits.planning import PlanningContext
from tasks.revisits.rules.capacity import planned_day

DIGEST_MAX_ITEMS = 200  # per digest, most overdue first; a longer list is not read
# A digest lists the customers handed to its recipient within this window before the run.
REASSIGNED_WINDOW = timedelta(days=1)
# How many of them are named: a leaver's whole book (hundreds) would bury the day's list.
REASSIGNED_LISTED = 20

# The batch's ids come first (a cheap index scan); only those rows are joined, so each batch
# costs its own size rather than the whole day's due set.
_DUE_EMAIL_REVISITS = text(
    """
    WITH batch AS (
        SELECT id FROM revisits
        WHERE status = 'open' AND channel = 'email' AND due_on <= :as_of AND id > :after
          AND created_at < :created_before AND outcome IS NULL
        ORDER BY id LIMIT :limit
    )
    SELECT v.id, v.customer_id, v.assignee_id, c.name, c.email, c.locale,
           COALESCE(r.code, '-') AS region_code
    FROM batch
    JOIN revisits v ON v.id = batch.id
    JOIN customers c ON c.id = v.customer_id
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    ORDER BY v.id
    """
).bindparams(bindparam("created_before", type_=UTCDateTime()))

# Far enough ahead to mean "no limit", and a timestamp both databases store.
_NO_LIMIT = datetime(9999, 1, 1, tzinfo=UTC)

_MARK_QUEUED = text(
    f"UPDATE revisits SET outcome = '{CARE_QUEUED}' "
    "WHERE id IN :ids AND status = 'open' AND outcome IS NULL"
).bindparams(id_list("ids"))
_MAKE_CALL = text(
    "UPDATE revisits SET channel = 'phone' WHERE id IN :ids AND status = 'open'"
).bindparams(id_list("ids"))


def queue_care_emails(
    engine: Engine,
    ctx: PlanningContext,
    *,
    cap_days: int,
    run_id: int | None,
    dry_run: bool,
    batch: int = 2000,
    created_before: datetime | None = None,
) -> RunCounts:
    """Care emails for open email-channel revisits that are due (planning sends most of them as
    it creates the revisits; this catches the rest, e.g. those the contact cap deferred).

    ``created_before``: only revisits created before this instant - the flow passes its run's
    instant, so this can run beside planning and leave the revisits planning creates (and has
    already decided about) to it."""
    counts = RunCounts()
    after = 0
    params = {"as_of": ctx.as_of, "limit": batch, "created_before": created_before or _NO_LIMIT}
    while True:
        with engine.begin() as conn:
            rows = conn.execute(_DUE_EMAIL_REVISITS, {**params, "after": after}).all()
            if not rows:
                break
            after = rows[-1].id
            ids = [r.customer_id for r in rows]
            # Consent, address and the contact cap over every kind of customer email.
            facts = load_contact_facts(conn, ids)
            context = load_care_context(conn, ids, timezone=ctx.timezone)
            messages: list[NewMessage] = []
            sent: list[tuple[int, int, int | None]] = []
            calls: list[int] = []
            for row in rows:
                reason = care_decision(facts[row.customer_id], now=ctx.now, cap_days=cap_days)
                if reason in NO_EMAIL_REASONS:
                    counts.add(row.region_code, f"phone_instead:{reason}")
                    calls.append(row.id)
                    continue
                if reason:
                    counts.add(row.region_code, f"care_skipped:{reason}")
                    continue
                recipient = CareRecipient(row.customer_id, row.name, row.email, False, row.locale)
                messages.append(
                    care_message(
                        as_of=ctx.as_of,
                        recipient=recipient,
                        manager=care_signer(ctx.directory, row.assignee_id),
                        last_contact_date=context[row.customer_id].last_contact_date,
                        last_issue=context[row.customer_id].last_issue,
                        run_id=run_id,
                    )
                )
                sent.append((row.id, row.customer_id, row.assignee_id))
                counts.add(row.region_code, "care_emails")
            if not dry_run and calls:
                conn.execute(_MAKE_CALL, {"ids": calls})
            if not dry_run and sent:
                # Bulk statements: the outbox rows, one update of the revisits.
                enqueue(conn, messages, now=ctx.now)
                conn.execute(_MARK_QUEUED, {"ids": [s[0] for s in sent]})
    return counts


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


# Due revisits, and - from the day after it is raised - a care alert's urgent revisit, due
# within N working days (``tasks.care_alerts``): the manager sees it before its deadline.
_DIGEST_LOAD = text(
    """
    SELECT assignee_id, COUNT(*) AS n FROM revisits
    WHERE status = 'open' AND (due_on <= :as_of OR reason = 'care_alert')
      AND assignee_id IS NOT NULL AND (outcome IS NULL OR outcome <> 'email_queued')
    GROUP BY assignee_id ORDER BY assignee_id
    """
)

_DIGEST_REVISITS = text(
    """
    SELECT v.id, v.customer_id, v.assignee_id, v.abc_class, v.channel, v.due_on,
           v.planned_for, v.needs_reassignment, c.name AS customer_name, c.phone,
           COALESCE(r.code, '-') AS region_code, v.reason
    FROM revisits v
    JOIN customers c ON c.id = v.customer_id
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    WHERE v.status = 'open' AND (v.due_on <= :as_of OR v.reason = 'care_alert')
      AND v.assignee_id IN :assignees
      AND (v.outcome IS NULL OR v.outcome <> 'email_queued')
    ORDER BY v.assignee_id, COALESCE(v.planned_for, v.due_on), v.id
    """
).bindparams(id_list("assignees"))


def _assignee_batches(
    conn: Connection, as_of: date, max_rows: int, batches: int | None
) -> list[list[int]]:
    """Assignees with due revisits in batches of about equal size: ``batches`` of them, or as
    few of at most about ``max_rows`` revisits as will do. Batches run side by side, so the
    largest one sets the time (greedy filling would leave a small last batch, and a large one
    before it)."""
    sizes = conn.execute(_DIGEST_LOAD, {"as_of": as_of}).tuples().all()
    total = sum(n for _, n in sizes)
    count = batches if batches else max(1, math.ceil(total / max(1, max_rows)))
    share = max(1, total) / count
    filled: list[list[int]] = [[] for _ in range(count)]
    done = 0
    for assignee_id, n in sizes:
        # An assignee goes to the batch holding the middle of its revisits.
        filled[min(count - 1, int((done + n / 2) / share))].append(assignee_id)
        done += n
    return [batch for batch in filled if batch]


@dataclass(frozen=True)
class _Later:
    """An assignee's due revisits planned for later working days (capacity): how many, until
    when - the digest says so instead of listing them."""

    count: int
    until: date


def _assignee_groups(
    conn: Connection, as_of: date, assignees: list[int]
) -> tuple[list[list[Any]], dict[int, _Later]]:
    """The revisits of ``assignees`` planned for today or earlier (``planned_day``) and the
    urgent follow-ups of care alerts, one list per assignee, most overdue first; and per
    assignee those planned for later days."""
    groups: dict[int, list[Any]] = {}
    later: dict[int, _Later] = {}
    # .all(): one fetch of the whole result (fetching row by row costs ~5 us a row in psycopg).
    for row in conn.execute(_DIGEST_REVISITS, {"as_of": as_of, "assignees": assignees}).all():
        day = _day(row)
        if day <= as_of or row.reason == URGENT_REASON:  # urgent: listed before its deadline
            groups.setdefault(row.assignee_id, []).append(row)
        else:
            seen = later.get(row.assignee_id)
            later[row.assignee_id] = _Later(
                (seen.count if seen else 0) + 1, max(day, seen.until) if seen else day
            )
    return list(groups.values()), later


def digest_batches(
    engine: Engine, as_of: date, max_rows: int = 4000, *, batches: int | None = None
) -> list[list[int]]:
    """The assignees to send a digest to, in ``batches`` batches of about equal work, or (None)
    in batches of about ``max_rows`` revisits (the unit of a task: batches are independent, so
    a flow can queue them concurrently)."""
    if batches is not None and batches < 1:
        raise ValueError(f"batches must be positive, got {batches}")
    with engine.connect() as conn:
        return _assignee_batches(conn, as_of, max_rows, batches)


def digest_key(as_of: date, assignee_id: int) -> str:
    """One digest per assignee and day."""
    return f"revisit_digest:{as_of}:staff:{assignee_id}"


def queue_digest_batch(
    engine: Engine,
    ctx: PlanningContext,
    assignees: list[int],
    *,
    outcome_url: Callable[[int, int], str],
    run_id: int | None,
    dry_run: bool,
    list_url: Callable[[int], str] | None = None,
) -> RunCounts:
    """One digest per assignee in ``assignees``, queued in one transaction. ``list_url`` makes
    the link to an assignee's full list of open revisits (none without it).

    Reads and the write are separate transactions (as in planning), so batches can run side by
    side: a read snapshot is never upgraded to a write after another batch has committed."""
    counts = RunCounts()
    with engine.connect() as conn:
        groups, later = _assignee_groups(conn, ctx.as_of, assignees)
        # A re-run of the day composes only the digests not queued yet (and counts the others
        # apart): its counts are the rows it writes.
        queued = queued_keys(
            conn, [digest_key(ctx.as_of, group[0].assignee_id) for group in groups]
        )
        ids = [row.customer_id for group in groups for row in group[:DIGEST_MAX_ITEMS]]
        context = load_customer_context(conn, ids, as_of=ctx.as_of, timezone=ctx.timezone)
        # The customers handed to each assignee over the last day (a leaver's, or a manager's
        # deliberate reassignment): listed in their digest.
        handed = handed_to(
            conn,
            [group[0].assignee_id for group in groups],
            since=ctx.now - REASSIGNED_WINDOW,
            until=ctx.now,
        )
    messages = list(
        _digest_messages(
            groups,
            ctx.directory,
            context,
            outcome_url,
            ctx,
            run_id,
            counts,
            queued,
            list_url,
            handed,
            later,
        )
    )
    if not dry_run and messages:
        with engine.begin() as conn:
            result = enqueue(conn, messages, now=ctx.now)
        if result.existing:
            _recount_digests(counts, result.inserted, result.existing)
    return counts


def _recount_digests(counts: RunCounts, inserted: int, existing: int) -> None:
    """Another run of the same day queued some of this batch's digests between our read and
    our write (two runs at once; the outbox key kept them single): count the rows written, as
    planning does in that case, without their regions (the outbox does not say which)."""
    for counter in counts.by_region.values():
        counter.pop("digests", None)
    if inserted:
        counts.add("-", "digests", inserted)
    counts.add("-", "digests_already_queued", existing)


def queue_digests(
    engine: Engine,
    ctx: PlanningContext,
    *,
    outcome_url: Callable[[int, int], str],
    run_id: int | None,
    dry_run: bool,
    batch_rows: int = 5000,
    list_url: Callable[[int], str] | None = None,
) -> RunCounts:
    """Every digest of the day, batch after batch (the flow runs the batches as tasks)."""
    counts = RunCounts()
    for assignees in digest_batches(engine, ctx.as_of, batch_rows):
        counts.merge(
            queue_digest_batch(
                engine,
                ctx,
                assignees,
                outcome_url=outcome_url,
                run_id=run_id,
                dry_run=dry_run,
                list_url=list_url,
            )
        )
    return counts


def _digest_messages(
    groups: list[list[Any]],
    directory: Directory,
    context: dict[int, Any],
    outcome_url: Callable[[int, int], str],
    ctx: PlanningContext,
    run_id: int | None,
    counts: RunCounts,
    queued: Container[str] = frozenset(),
    list_url: Callable[[int], str] | None = None,
    handed: Mapping[int, list[dict[str, Any]]] | None = None,
    later: Mapping[int, _Later] | None = None,
) -> Iterator[NewMessage]:
    for group in groups:
        overdue = 0
        for row in group:  # every open revisit past its planned day, per customer's region
            if _day(row) < ctx.as_of:
                counts.add(row.region_code, "overdue")
                overdue += 1
        if digest_key(ctx.as_of, group[0].assignee_id) in queued:
            counts.add(group[0].region_code, "digests_already_queued")
            continue
        # Nothing goes to someone who left: the flow hands their open work over first, so this
        # is work nobody could take (no active branch manager), reported.
        assignee = directory.member(group[0].assignee_id)
        region = group[0].region_code
        if assignee is not None and not assignee.active:
            counts.add(region, "digest_skipped:assignee_left")
            continue
        if assignee is None or not assignee.email:
            counts.add(region, "digest_skipped:manager_without_email")
            continue
        items = []
        for row in group[:DIGEST_MAX_ITEMS]:
            info = context[row.customer_id]
            due_on = _day(row)  # the day it was planned for: what it is overdue from
            items.append(
                {
                    "customer_name": row.customer_name,
                    "customer_class": row.abc_class,
                    "phone": mask_phone(row.phone) or None,
                    "channel": row.channel,
                    "due_date": due_on.isoformat(),
                    "overdue_days": max((ctx.as_of - due_on).days, 0),
                    "last_contact_date": _iso(info.last_contact_date),
                    "last_contact_outcome": info.last_contact_outcome,
                    "open_complaints": info.open_complaints,
                    "last_survey_score": info.last_survey_score,
                    "trend_90d_pct": info.trend_90d_pct,
                    "outcome_url": outcome_url(row.id, assignee.id),
                    "needs_reassignment": bool(row.needs_reassignment),
                }
            )
        counts.add(region, "digests")
        deferred = (later or {}).get(assignee.id)
        yield NewMessage(
            idempotency_key=digest_key(ctx.as_of, assignee.id),
            kind="revisit_digest",
            locale=assignee.locale,
            recipient_email=assignee.email,
            recipient_name=assignee.name,
            customer_id=None,
            staff_id=assignee.id,
            context={
                "manager_name": assignee.name,
                "date": ctx.as_of.isoformat(),
                "items": items,
                # The whole day, not only the items shown: no silent cap.
                "total_count": len(group),
                "overdue_count": overdue,
                "more_count": len(group) - len(items),
                "list_url": None if list_url is None else list_url(assignee.id),
                # The first REASSIGNED_LISTED by name; the count is the whole hand-over.
                "reassigned": (handed or {}).get(assignee.id, [])[:REASSIGNED_LISTED],
                "reassigned_count": len((handed or {}).get(assignee.id, [])),
                # Due, but planned for later working days within the daily capacity.
                "deferred": deferred.count if deferred else 0,
                "deferred_until": deferred.until.isoformat() if deferred else None,
            },
            run_id=run_id,
        )


def _day(row: Any) -> date:
    """A digest row's planned day (``planned_day``)."""
    return planned_day(raw_date(row.due_on), raw_date(row.planned_for) if row.planned_for else None)


__all__ = [
    "DIGEST_MAX_ITEMS",
    "digest_batches",
    "queue_care_emails",
    "queue_digest_batch",
    "queue_digests",
]
