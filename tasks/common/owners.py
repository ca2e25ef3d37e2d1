"""Changing who owns a customer (the account manager), audited, with the open work moving along.

Every change writes one ``customer_owner_changes`` row (customer, from, to, at, source, reason)
in the same transaction as the change, and moves the customer's open revisits to the new owner
(no longer flagged for reassignment). Three callers: the revisits flow hands a leaver's
customers to the branch manager (``hand_over_leavers``), ``crm customer reassign`` and the
customer import reassign deliberately (``reassign``). Set-based: one read, then a few
statements per target and chunk of ids, never one round trip per customer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, text

from crm_db.bulk import driver_timestamp, id_list, insert_rows
from crm_db.types import UTCDateTime
from tasks.common.directory import Directory

SOURCE_LEAVER = "leaver"
SOURCE_CLI = "cli"
SOURCE_IMPORT = "import"
REASON_LEFT = "account manager left: handed to the branch manager"
_CHUNK = 5000

_AUDIT_COLUMNS = (
    "customer_id",
    "from_staff_id",
    "to_staff_id",
    "changed_at",
    "source",
    "reason",
    "run_id",
)
_SET_OWNER = text("UPDATE customers SET account_manager_id = :to WHERE id IN :ids").bindparams(
    id_list("ids")
)
_MOVE_OPEN = text(
    "UPDATE revisits SET assignee_id = :to, needs_reassignment = false "
    "WHERE customer_id IN :ids AND status = 'open'"
).bindparams(id_list("ids"))
# A leaver's customers: account manager inactive. With the branch (the hand-over rule's input).
_LEAVERS_CUSTOMERS = text(
    """
    SELECT c.id, c.account_manager_id, c.branch_id
    FROM customers c JOIN staff s ON s.id = c.account_manager_id
    WHERE s.active = false
    ORDER BY c.id
    """
)
_OF_OWNER = text(
    "SELECT id, account_manager_id FROM customers WHERE account_manager_id = :owner ORDER BY id"
)
_OF_IDS = text(
    "SELECT id, account_manager_id FROM customers WHERE id IN :ids ORDER BY id"
).bindparams(id_list("ids"))


class OwnerChangeError(ValueError):
    """A reassignment that cannot be made (unknown customer or staff, an inactive target)."""


@dataclass(frozen=True, slots=True)
class OwnerChange:
    customer_id: int
    from_staff_id: int | None
    to_staff_id: int


def apply_owner_changes(
    conn: Connection,
    changes: Sequence[OwnerChange],
    *,
    now: datetime,
    source: str,
    reason: str,
    run_id: int | None = None,
) -> int:
    """Write ``changes`` (audit rows, the owners, their open revisits) in ``conn``'s
    transaction; a change to the current owner is no change and is left out. Returns how many
    customers changed owner."""
    real = [c for c in changes if c.from_staff_id != c.to_staff_id]
    if not real:
        return 0
    stamp = driver_timestamp(now, conn.dialect.name)
    insert_rows(
        conn,
        "customer_owner_changes",
        _AUDIT_COLUMNS,
        [
            (c.customer_id, c.from_staff_id, c.to_staff_id, stamp, source, reason, run_id)
            for c in real
        ],
    )
    by_target: dict[int, list[int]] = defaultdict(list)
    for c in real:
        by_target[c.to_staff_id].append(c.customer_id)
    for to, ids in by_target.items():
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            conn.execute(_SET_OWNER, {"to": to, "ids": chunk})
            conn.execute(_MOVE_OPEN, {"to": to, "ids": chunk})
    return len(real)


def leaver_hand_over(conn: Connection, directory: Directory) -> tuple[list[OwnerChange], int]:
    """The changes that hand every leaver's customer to its new owner by the assignment rule
    (``Directory.owner``: the branch manager while active), and how many have nobody to go to
    (no branch, or its manager left too: they stay, flagged on their revisits, and are
    counted)."""
    changes: list[OwnerChange] = []
    stranded = 0
    decided: dict[tuple[int, int | None], int | None] = {}
    for customer_id, manager_id, branch_id in conn.execute(_LEAVERS_CUSTOMERS).tuples():
        key = (manager_id, branch_id)
        if key not in decided:
            assignment = directory.owner(manager_id, branch_id)
            decided[key] = assignment.assignee_id
        to = decided[key]
        if to is None or to == manager_id:
            stranded += 1
            continue
        changes.append(OwnerChange(customer_id, manager_id, to))
    return changes, stranded


def reassignment(
    conn: Connection,
    directory: Directory,
    *,
    to_staff: int,
    customer_ids: Sequence[int] = (),
    from_staff: int | None = None,
) -> list[OwnerChange]:
    """The changes that give ``to_staff`` the customers ``customer_ids`` and/or every customer
    of ``from_staff``. Errors name the record: an unknown customer, an unknown or inactive
    target."""
    target = directory.member(to_staff)
    if target is None:
        raise OwnerChangeError(f"staff {to_staff} does not exist")
    if not target.active:
        raise OwnerChangeError(f"staff {to_staff} ({target.name}) has left (staff.active is false)")
    if from_staff is not None and directory.member(from_staff) is None:
        raise OwnerChangeError(f"staff {from_staff} does not exist")
    rows: dict[int, int | None] = {}
    if customer_ids:
        found = dict(conn.execute(_OF_IDS, {"ids": list(customer_ids)}).tuples().all())
        missing = sorted(set(customer_ids) - set(found))
        if missing:
            raise OwnerChangeError(f"customer {missing[0]} does not exist")
        rows.update(found)
    if from_staff is not None:
        rows.update(conn.execute(_OF_OWNER, {"owner": from_staff}).tuples().all())
    return [OwnerChange(cid, owner, to_staff) for cid, owner in sorted(rows.items())]


# The customers handed to a staff member since a time, with whom from: the digest's
# "reassigned to you" list.
_HANDED_TO = text(
    """
    SELECT o.to_staff_id, o.customer_id, c.name AS customer_name, s.name AS from_name, o.source
    FROM customer_owner_changes o
    JOIN customers c ON c.id = o.customer_id
    LEFT JOIN staff s ON s.id = o.from_staff_id
    WHERE o.to_staff_id IN :staff AND o.changed_at > :since AND o.changed_at <= :until
    ORDER BY o.to_staff_id, o.id
    """
).bindparams(id_list("staff"))


def handed_to(
    conn: Connection, staff_ids: Sequence[int], *, since: datetime, until: datetime
) -> dict[int, list[dict[str, str | int | None]]]:
    """Per staff member: the customers reassigned to them in ``(since, until]``."""
    if not staff_ids:
        return {}
    statement = _HANDED_TO.bindparams(
        bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime())
    )
    found: dict[int, list[dict[str, str | int | None]]] = defaultdict(list)
    for row in conn.execute(statement, {"staff": list(staff_ids), "since": since, "until": until}):
        found[row.to_staff_id].append(
            {
                "customer_id": row.customer_id,
                "customer_name": row.customer_name,
                "from_name": row.from_name,
                "source": row.source,
            }
        )
    return dict(found)


__all__ = [
    "OwnerChange",
    "OwnerChangeError",
    "REASON_LEFT",
    "SOURCE_CLI",
    "SOURCE_IMPORT",
    "SOURCE_LEAVER",
    "apply_owner_changes",
    "handed_to",
    "leaver_hand_over",
    "reassignment",
]
