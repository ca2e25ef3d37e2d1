"""IO for the revisits flow, step 0: staff who left hand their customers and open revisits to
the branch manager (``tasks.common.owners``), audited, before anything is planned, escalated or
sent - so nothing goes to a leaver and the new owner's digest lists what they were handed."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, Engine, text

from crm_db.bulk import id_list
from tasks.common.owners import REASON_LEFT, SOURCE_LEAVER, apply_owner_changes, leaver_hand_over
from tasks.common.run_context import RunContext, RunCounts
from tasks.common.write_lock import write_transaction


def hand_over_leavers(
    engine: Engine, ctx: RunContext, *, run_id: int | None, dry_run: bool
) -> RunCounts:
    """Counts ``reassigned`` (customers handed over), ``reassign_stranded`` (a leaver's
    customers with nobody to go to: no branch, or its manager left too) and
    ``revisits_moved`` (open revisits of someone who left, e.g. a branch manager's, moved to the
    customer's owner without an owner change)."""
    counts = RunCounts()
    with write_transaction(engine) as conn:
        changes, stranded = leaver_hand_over(conn, ctx.directory)
        if not dry_run:
            apply_owner_changes(
                conn, changes, now=ctx.now, source=SOURCE_LEAVER, reason=REASON_LEFT, run_id=run_id
            )
        moved = _move_stray_revisits(conn, ctx, dry_run)
        # Counted under each customer's region (片区), as every other column of the artifact.
        for region, n in _by_region(conn, [c.customer_id for c in changes]).items():
            counts.add(region, "reassigned", n)
    if stranded:
        counts.add("-", "reassign_stranded", stranded)
    if moved:
        counts.add("-", "revisits_moved", moved)
    return counts


_REGION_COUNTS = text(
    """
    SELECT COALESCE(r.code, '-') AS region_code, count(*) AS n
    FROM customers c
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    WHERE c.id IN :ids
    GROUP BY COALESCE(r.code, '-')
    """
).bindparams(id_list("ids"))
_CHUNK = 5000


def _by_region(conn: Connection, customer_ids: list[int]) -> dict[str, int]:
    found: dict[str, int] = defaultdict(int)
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = customer_ids[start : start + _CHUNK]
        for region, n in conn.execute(_REGION_COUNTS, {"ids": chunk}).tuples():
            found[region] += n
    return dict(found)


# Open revisits still assigned to someone who left (after the hand-over: work whose customer's
# owner is someone else, e.g. a call assigned to a branch manager who has since left).
_STRAY = text(
    """
    SELECT v.id, c.account_manager_id, c.branch_id
    FROM revisits v
    JOIN staff s ON s.id = v.assignee_id
    JOIN customers c ON c.id = v.customer_id
    WHERE v.status = 'open' AND s.active = false
    ORDER BY v.id
    """
)
_MOVE = text(
    "UPDATE revisits SET assignee_id = :to, needs_reassignment = :flag "
    "WHERE id IN :ids AND status = 'open'"
).bindparams(id_list("ids"))


def _move_stray_revisits(conn: Connection, ctx: RunContext, dry_run: bool) -> int:
    targets: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for revisit_id, manager_id, branch_id in conn.execute(_STRAY).tuples():
        owner = ctx.directory.owner(manager_id, branch_id)
        if owner.assignee_id is not None:
            targets[owner.assignee_id, owner.needs_reassignment].append(revisit_id)
    if not dry_run:
        for (to, flag), ids in targets.items():
            conn.execute(_MOVE, {"to": to, "flag": flag, "ids": ids})
    return sum(len(ids) for ids in targets.values())


__all__ = ["hand_over_leavers"]
