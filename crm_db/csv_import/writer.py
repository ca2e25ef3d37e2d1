"""Upsert validated records in chunks with bulk statements (IO).

Per chunk: one SELECT finds the rows that already exist (by natural key), a comparison sorts the
chunk into inserted / updated / unchanged, and one ``INSERT ... ON CONFLICT DO UPDATE`` executed
for many rows writes only the new and changed ones, so a second import of the same file writes
nothing. The caller runs every chunk of a file inside one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Table, bindparam, case, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from crm_db.csv_import.kinds.complaints import ComplaintRecord
from crm_db.csv_import.kinds.contacts import ContactRecord
from crm_db.csv_import.kinds.customers import CustomerRecord
from crm_db.csv_import.kinds.targets import TargetRecord
from crm_db.csv_import.kinds.transactions import TransactionRecord
from crm_db.enums import REACHED_OUTCOMES, RevisitStatus
from crm_db.models import (
    ConsentChange,
    ContactHistory,
    Customer,
    Revisit,
    Transaction,
)
from tasks.common.owners import SOURCE_IMPORT, OwnerChange, apply_owner_changes

Values = dict[str, Any]
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


@dataclass(slots=True)
class _Sorted:
    inserted: list[Values] = field(default_factory=list)
    updated: list[tuple[Values, RowMapping]] = field(default_factory=list)  # (new, old)
    unchanged: int = 0

    def counts(self) -> WriteCounts:
        return WriteCounts(len(self.inserted), len(self.updated), self.unchanged)


def begin_write(conn: Connection) -> None:
    """Start the import's transaction. On SQLite take the write lock up front (BEGIN IMMEDIATE):
    a deferred transaction that reads first fails with SQLITE_BUSY, without waiting, when it
    later upgrades to a writer after another connection has committed."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"CSV import supports SQLite and PostgreSQL, not {conn.dialect.name}")


def _key_filter(table: Table, key_columns: Sequence[str], keys: list[Key]) -> ColumnElement[bool]:
    if len(key_columns) == 1:
        return table.c[key_columns[0]].in_([key[0] for key in keys])
    return tuple_(*(table.c[name] for name in key_columns)).in_(keys)


def _sort_chunk(
    conn: Connection,
    table: Table,
    key_columns: Sequence[str],
    rows: list[Values],
    expected: Callable[[Values, RowMapping], Values] = lambda new, _old: new,
) -> _Sorted:
    """Compare each row with what the database holds. ``expected`` gives the values a row will
    have after the upsert (for columns the upsert merges rather than overwrites)."""
    compared = [name for name in rows[0] if name not in key_columns and name != "created_at"]
    keys = [tuple(row[name] for name in key_columns) for row in rows]
    existing = {
        tuple(found[name] for name in key_columns): found
        for found in conn.execute(
            select(table.c.id, *(table.c[n] for n in (*key_columns, *compared))).where(
                _key_filter(table, key_columns, keys)
            )
        ).mappings()
    }
    result = _Sorted()
    for key, row in zip(keys, rows, strict=True):
        old = existing.get(key)
        if old is None:
            result.inserted.append(row)
            continue
        after = expected(row, old)
        if any(after[name] != old[name] for name in compared):
            result.updated.append((row, old))
        else:
            result.unchanged += 1
    return result


def _upsert(
    conn: Connection,
    table: Table,
    key_columns: Sequence[str],
    rows: list[Values],
    set_: Mapping[str, Any] | None = None,
) -> None:
    """One bulk statement for all ``rows``; on a key conflict overwrite with ``set_`` (default:
    every non-key column from the file)."""
    if not rows:
        return
    stmt = _insert(conn, table)
    if set_ is None:
        set_ = {
            name: stmt.excluded[name]
            for name in rows[0]
            if name not in key_columns and name != "created_at"
        }
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key_columns), set_=set_), rows)


def write_customers(
    conn: Connection, records: Sequence[CustomerRecord], now: datetime
) -> WriteCounts:
    table = Customer.__table__
    assert isinstance(table, Table)
    rows = [{**record.values(), "created_at": now} for record in records]

    def expected(new: Values, old: RowMapping) -> Values:
        # Consent: a file may record an opt-out but never withdraws one the CRM holds (an
        # unsubscribe link, a request to staff); re-consent is not a bulk operation.
        return {
            **new,
            "marketing_opt_out": old["marketing_opt_out"] or new["marketing_opt_out"],
            "survey_opt_out": old["survey_opt_out"] or new["survey_opt_out"],
        }

    chunk = _sort_chunk(conn, table, ("external_id",), rows, expected)
    stmt = _insert(conn, table)
    excluded = stmt.excluded
    set_: dict[str, Any] = {
        name: excluded[name]
        for name in rows[0]
        if name not in ("external_id", "created_at", "marketing_opt_out", "survey_opt_out")
    }
    set_["marketing_opt_out"] = or_(table.c.marketing_opt_out, excluded.marketing_opt_out)
    set_["survey_opt_out"] = or_(table.c.survey_opt_out, excluded.survey_opt_out)
    # A new address has not bounced yet: forget the old address's undeliverable mark.
    set_["email_undeliverable"] = case(
        (table.c.email.is_distinct_from(excluded.email), False),
        else_=table.c.email_undeliverable,
    )
    _upsert(conn, table, ("external_id",), _to_write(chunk), set_)
    _audit_consent(conn, table, chunk, now)
    _audit_owner(conn, chunk, now)
    return chunk.counts()


def _audit_owner(conn: Connection, chunk: _Sorted, now: datetime) -> None:
    """An import that changes an existing customer's account manager is an owner change like any
    other: audited (source ``import``) and the customer's open revisits move along, in the
    import's transaction (``tasks.common.owners``). The new owner is written by the upsert."""
    changes = [
        OwnerChange(old["id"], old["account_manager_id"], row["account_manager_id"])
        for row, old in chunk.updated
        if "account_manager_id" in row
        and row["account_manager_id"] is not None
        and row["account_manager_id"] != old["account_manager_id"]
    ]
    apply_owner_changes(
        conn, changes, now=now, source=SOURCE_IMPORT, reason="account manager changed by import"
    )


_CONSENT_FIELDS = ("marketing_opt_out", "survey_opt_out")


def _audit_consent(conn: Connection, table: Table, chunk: _Sorted, now: datetime) -> None:
    """One ``consent_changes`` row per opt-out this import recorded (source ``import``), in the
    import's transaction: a new customer who opted out, or an existing one whose opt-out the
    file adds (a file never withdraws one, see ``write_customers``)."""
    audit = ConsentChange.__table__
    assert isinstance(audit, Table)
    changes: list[tuple[str, str, str | None]] = []  # external_id, field, old value
    for row in chunk.inserted:
        changes += [(row["external_id"], f, None) for f in _CONSENT_FIELDS if row.get(f)]
    for row, old in chunk.updated:
        changes += [
            (row["external_id"], f, "false") for f in _CONSENT_FIELDS if row[f] and not old[f]
        ]
    if not changes:
        return
    wanted = sorted({external_id for external_id, _, _ in changes})
    ids = {
        external_id: id_
        for external_id, id_ in conn.execute(
            select(table.c.external_id, table.c.id).where(table.c.external_id.in_(wanted))
        )
    }
    conn.execute(
        audit.insert(),
        [
            {
                "customer_id": ids[external_id],
                "field": field,
                "old_value": old_value,
                "new_value": "true",
                "source": "import",
                "changed_at": now,
            }
            for external_id, field, old_value in changes
        ],
    )


def write_transactions(
    conn: Connection, records: Sequence[TransactionRecord], now: datetime
) -> WriteCounts:
    table = Transaction.__table__
    assert isinstance(table, Table)
    chunk = _sort_chunk(conn, table, ("external_id",), [record.values() for record in records])
    _upsert(conn, table, ("external_id",), _to_write(chunk))
    return chunk.counts()


def write_complaints(
    conn: Connection, records: Sequence[ComplaintRecord], now: datetime
) -> WriteCounts:
    """Complaints go through the lifecycle (``tasks.complaints.importing``): opened at their
    received time with their events at the row's times, targets copied, intake notices queued.
    Rows the recorded state refuses raise ``RowsRejected`` (the import rolls back)."""
    from tasks.complaints.importing import write_complaint_records

    counts = write_complaint_records(conn, records, now)
    return WriteCounts(counts.inserted, counts.updated, counts.unchanged)


def write_contacts(
    conn: Connection, records: Sequence[ContactRecord], now: datetime
) -> WriteCounts:
    """Besides the upsert, close the revisits the contacts complete, by ``record_outcome``'s
    rule: an outcome that reached the customer closes an open revisit (done, that outcome,
    completed at the contact's time); an attempt leaves it open. Only rows this import writes
    close anything, and only open revisits, so a re-import changes nothing; a corrected row never
    reopens a revisit. When several rows close one revisit, the first in the file wins, whatever
    the chunk boundaries (a later chunk finds it closed)."""
    table = ContactHistory.__table__
    revisits = Revisit.__table__
    assert isinstance(table, Table) and isinstance(revisits, Table)
    chunk = _sort_chunk(conn, table, ("external_id",), [record.values() for record in records])
    written = _to_write(chunk)
    _upsert(conn, table, ("external_id",), written)
    written_ids = {row["external_id"] for row in written}
    closing: dict[int, Values] = {}
    for record in records:  # file order
        if (
            record.revisit_id is not None
            and record.outcome in REACHED_OUTCOMES
            and record.external_id in written_ids
        ):
            closing.setdefault(
                record.revisit_id,
                {
                    "revisit": record.revisit_id,
                    "reached": record.outcome.value,
                    "at": record.occurred_at,
                    "contact_notes": record.notes,
                },
            )
    if closing:
        conn.execute(
            update(revisits)
            .where(
                revisits.c.id == bindparam("revisit"),
                revisits.c.status == RevisitStatus.OPEN,
            )
            .values(
                status=RevisitStatus.DONE,
                outcome=bindparam("reached"),
                completed_at=bindparam("at"),
                notes=bindparam("contact_notes"),
            ),
            list(closing.values()),
        )
    return chunk.counts()


class TargetWriter:
    """Targets are versioned (``tasks.targets.store``): one import is one new version, holding
    the rows whose value differs from the latest version (a new key, or a changed value).
    The version row is created with the first such row, in the import's transaction; an
    import that changes nothing creates no version (a re-import writes nothing)."""

    def __init__(self, actor: str, source_name: str | None) -> None:
        self.actor = actor
        self.source_name = source_name
        self.version_id: int | None = None

    def __call__(
        self, conn: Connection, records: Sequence[TargetRecord], now: datetime
    ) -> WriteCounts:
        from tasks.targets.store import TargetValue, create_version, effective_values, write_values

        keys = [(r.period, r.scope, r.scope_id, r.metric) for r in records]
        current = effective_values(conn, keys)
        changed = [
            TargetValue(key, record.value)
            for key, record in zip(keys, records, strict=True)
            if current.get(key) != record.value
        ]
        inserted = sum(1 for value in changed if value.key not in current)
        if changed and self.version_id is None:
            self.version_id = create_version(
                conn, now=now, created_by=self.actor, source="import", source_name=self.source_name
            )
        if self.version_id is not None:
            write_values(conn, self.version_id, changed)
        return WriteCounts(inserted, len(changed) - inserted, len(records) - len(changed))


def write_responses(conn: Connection, records: Sequence[Any], now: datetime) -> WriteCounts:
    """Survey answers go through the answer page's own recording
    (``tasks.surveys.importing``); rows their invitation refuses raise ``RowsRejected``."""
    from tasks.surveys.importing import write_response_records

    counts = write_response_records(conn, records, now)
    return WriteCounts(counts.inserted, counts.updated, counts.unchanged)


def _to_write(chunk: _Sorted) -> list[Values]:
    return [*chunk.inserted, *(new for new, _old in chunk.updated)]


Writer = Callable[[Connection, Sequence[Any], datetime], WriteCounts]

WRITERS: dict[str, Writer] = {
    "customers": write_customers,
    "transactions": write_transactions,
    "complaints": write_complaints,
    "contacts": write_contacts,
    "responses": write_responses,
}

# Kinds whose writer keeps state over the chunks of one import (a new one per import).
WRITER_FACTORIES: dict[str, Callable[[str, str | None], Writer]] = {
    "targets": TargetWriter,
}
