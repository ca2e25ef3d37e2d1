"""A hash of every CRM table's contents, in primary-key order: equal hashes, equal data.

Used to prove that the seed is deterministic; it reads through SQLAlchemy Core, so values are
compared as the application sees them (typed), not as the backend happens to store them.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine, select

from crm_db.models import Base


def table_fingerprints(engine: Engine, batch: int = 10_000) -> dict[str, str]:
    """sha256 per table over the repr of each row, ordered by primary key."""
    result: dict[str, str] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            digest = hashlib.sha256()
            query = select(table).order_by(*table.primary_key.columns)
            for rows in connection.execution_options(yield_per=batch).execute(query).partitions():
                for row in rows:
                    digest.update(repr(tuple(row)).encode())
                    digest.update(b"\n")
            result[table.name] = digest.hexdigest()
    return result


def database_fingerprint(engine: Engine) -> str:
    """One hash over all tables' fingerprints."""
    digest = hashlib.sha256()
    for name, value in sorted(table_fingerprints(engine).items()):
        digest.update(f"{name}={value}\n".encode())
    return digest.hexdigest()
