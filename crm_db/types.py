"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends.

    SQLite has no time zones, so values are stored as naive UTC and handed back aware; a naive
    value coming in is a programming error (we would not know its zone), so it is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JsonDict = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_json(value: Any) -> Any:
    """Identity helper documenting that a value is stored as JSON."""
    return value


# Raw SQL (``text()``) results skip the column types: SQLite hands back text, PostgreSQL values.


def raw_utc_datetime(value: Any) -> datetime | None:
    """A timestamp column read by raw SQL, as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def raw_date(value: Any) -> date:
    """A date column read by raw SQL."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))
