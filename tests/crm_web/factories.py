"""Plain factory functions for the web tests."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import Engine, select

from crm_core.settings import Settings
from crm_core.signing import sign
from crm_db.enums import CardType
from crm_db.models import Customer
from crm_db.session import session_scope

SIGNING_KEY = "web-test-signing-key-0123456789abcdef"
_numbers = itertools.count(1)


def web_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "secret_key": SecretStr(SIGNING_KEY),
        "public_base_url": "https://crm.example.test",
        "locale": "zh-CN",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_customer(
    engine: Engine,
    *,
    email: str | None = "zhang.san@example.com",
    locale: str = "zh-CN",
    timezone: str = "Asia/Shanghai",
    unsubscribed_at: datetime | None = None,
) -> int:
    number = next(_numbers)
    with session_scope(engine) as session:
        customer = Customer(
            external_id=f"WEB-{number:06d}",
            name=f"张三 {number}",
            email=email,
            phone="13812345678",
            locale=locale,
            timezone=timezone,
            card_type=CardType.PERSONAL,
            first_card_on=date(2024, 1, 15),
            unsubscribed_at=unsubscribed_at,
        )
        session.add(customer)
        session.flush()
        return customer.id


def unsubscribed_at(engine: Engine, customer_id: int) -> datetime | None:
    with session_scope(engine) as session:
        return session.execute(
            select(Customer.unsubscribed_at).where(Customer.id == customer_id)
        ).scalar_one()


def unsubscribe_token(
    customer_id: object,
    *,
    issued_at: datetime,
    valid_for: timedelta = timedelta(days=400),
    key: str = SIGNING_KEY,
    purpose: str = "unsubscribe",
) -> str:
    """A token as ``tasks/mail/links.py`` makes it (``sign`` with a 400-day expiry)."""
    return sign(key.encode(), purpose, {"customer": customer_id}, issued_at + valid_for)


class Clock:
    """The app's clock, set by the test; always aware UTC."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
