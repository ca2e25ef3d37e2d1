"""IO: the staff directory (a small table, loaded once per run) for assignment and addressing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from crm_db.models import Staff
from tasks.mail.message import is_valid_recipient


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
                # An undeliverable or malformed address counts as none: reported, never queued.
                email=row.email
                if not row.email_undeliverable and is_valid_recipient(row.email, row.name)
                else None,
                locale=row.locale,
                active=bool(row.active),
            )
            for row in rows
        }
