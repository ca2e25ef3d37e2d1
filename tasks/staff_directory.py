"""IO: the staff directory (a small table, loaded once per run) for assignment and addressing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from crm_db.models import Staff


@dataclass(frozen=True)
class StaffAddress:
    id: int
    name: str
    email: str | None
    locale: str
    active: bool

    @property
    def reachable(self) -> bool:
        return self.active and bool(self.email)


def load_staff_addresses(engine: Engine) -> dict[int, StaffAddress]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Staff.id,
                Staff.name,
                Staff.email,
                Staff.email_undeliverable,
                Staff.locale,
                Staff.active,
            )
        )
        return {
            row.id: StaffAddress(
                id=row.id,
                name=row.name,
                email=None if row.email_undeliverable else row.email,
                locale=row.locale,
                active=bool(row.active),
            )
            for row in rows
        }
