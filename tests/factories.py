"""Plain factory functions for tests: small, explicit rows with sensible defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import count
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from crm_db.enums import AbcClass, CardType, OutboxStatus, StaffRole, TransactionKind
from crm_db.models import Branch, Customer, OutboxMessage, Region, Staff, Transaction
from crm_db.session import session_scope

_ids = count(1)


def _next() -> int:
    return next(_ids)


@dataclass
class Org:
    region: Region
    branch: Branch
    region_manager: Staff
    branch_manager: Staff
    account_manager: Staff


def make_org(session: Session, code: str | None = None) -> Org:
    """A region with one branch, its region manager, branch manager and one account manager."""
    n = _next()
    code = code or f"R{n}"
    region = Region(code=code, name=f"{code} 片区")
    session.add(region)
    session.flush()
    branch = Branch(code=f"{code}-B1", name=f"{code} 一号加油站", region_id=region.id)
    session.add(branch)
    session.flush()
    region_manager = make_staff(session, StaffRole.REGION_MANAGER, region_id=region.id)
    branch_manager = make_staff(
        session, StaffRole.BRANCH_MANAGER, branch_id=branch.id, manager_id=region_manager.id
    )
    account_manager = make_staff(
        session, StaffRole.ACCOUNT_MANAGER, branch_id=branch.id, manager_id=branch_manager.id
    )
    region.manager_id, branch.manager_id = region_manager.id, branch_manager.id
    session.flush()
    return Org(region, branch, region_manager, branch_manager, account_manager)


def make_staff(session: Session, role: StaffRole, **fields: Any) -> Staff:
    n = _next()
    staff = Staff(
        external_id=f"S{n}",
        name=f"员工{n}",
        email=f"staff{n}@example.test",
        role=role,
        **fields,
    )
    session.add(staff)
    session.flush()
    return staff


def make_customer(session: Session, org: Org, **fields: Any) -> Customer:
    n = _next()
    values: dict[str, Any] = {
        "external_id": f"C{n}",
        "name": f"客户{n}",
        "email": f"customer{n}@example.test",
        "card_type": CardType.PERSONAL,
        "branch_id": org.branch.id,
        "account_manager_id": org.account_manager.id,
        "first_card_on": date(2024, 1, 1),
    }
    values.update(fields)
    customer = Customer(**values)
    session.add(customer)
    session.flush()
    return customer


def make_purchase(session: Session, customer: Customer, amount_fen: int, on: date) -> Transaction:
    assert customer.branch_id is not None
    row = Transaction(
        customer_id=customer.id,
        branch_id=customer.branch_id,
        kind=TransactionKind.PURCHASE,
        amount_fen=amount_fen,
        volume_ml=amount_fen * 10 // 75,
        occurred_on=on,
    )
    session.add(row)
    return row


def queue_earlier_care_email(session: Session, customer: Customer, at: datetime) -> None:
    """A care email queued for ``customer`` at ``at``: it counts against the contact cap."""
    from tasks.mail.outbox import NewMessage, enqueue

    enqueue(
        session,
        [
            NewMessage(
                idempotency_key="earlier:care",
                kind="revisit_care",
                locale="zh-CN",
                recipient_email=customer.email or "",
                recipient_name=customer.name,
                customer_id=customer.id,
                staff_id=None,
                context={"customer_name": customer.name, "manager_name": "x"},
            )
        ],
        now=at,
    )


@dataclass(frozen=True)
class CareEmailRow:
    outbox_id: int
    customer_id: int
    account_manager_id: int
    branch_manager_id: int


CARE_EMAIL_SENT = datetime(2026, 11, 17, 1, 0, tzinfo=UTC)


def add_sla_policies(session: Session) -> None:
    """The default SLA policies and a bare CN calendar (09:00-18:00, Monday to Friday, no
    holidays), unless there is one."""
    from crm_db.defaults import _insert_sla_policies, default_calendar
    from crm_db.models import BusinessCalendar

    _insert_sla_policies(session)
    if session.scalar(select(BusinessCalendar.id).where(BusinessCalendar.code == "CN")) is None:
        calendar = default_calendar("Asia/Shanghai")
        calendar.holidays_from = None
        session.add(calendar)
    session.flush()


def make_care_email(
    engine: Engine,
    *,
    manager_active: bool = True,
    kind: str = "revisit_care",
    locale: str = "zh-CN",
    assignable: bool = True,
    last_issue: str | None = "加油卡充值",
) -> CareEmailRow:
    """A C-class customer of a fresh org, and a care email queued for them at
    ``CARE_EMAIL_SENT`` in ``locale`` (``kind`` makes it another email instead). Not
    ``assignable``: the customer has neither branch nor account manager. With a
    ``last_issue`` the email asks "was it solved?"; without, it offers "please call me"."""
    from crm_db.models import OutboxMessage
    from crm_db.session import session_scope
    from tasks.mail.outbox import NewMessage, enqueue

    with session_scope(engine) as session:
        # A "not solved" answer opens complaint work: the SLA policies in force and the CN
        # calendar (plain weekdays here, no holidays) are what a migrated database holds.
        add_sla_policies(session)
        org = make_org(session)
        org.account_manager.active = manager_active
        customer = make_customer(session, org, abc_class=AbcClass.C)
        if not assignable:
            customer.branch_id = customer.account_manager_id = None
        message = NewMessage(
            idempotency_key=f"{kind}:2026-11-17:customer:{customer.id}",
            kind=kind,
            locale=locale,
            recipient_email=customer.email or "",
            recipient_name=customer.name,
            customer_id=customer.id,
            staff_id=None,
            context={"customer_name": customer.name, "last_issue": last_issue},
        )
        assert enqueue(session, [message], now=CARE_EMAIL_SENT).inserted == 1
        outbox_id = session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.customer_id == customer.id)
        )
        assert outbox_id is not None
        return CareEmailRow(outbox_id, customer.id, org.account_manager.id, org.branch_manager.id)


def deliver_care_emails(engine: Engine, at: datetime) -> None:
    """Stand-in for the relay accepting every pending care email at ``at`` (the real SMTP path
    is tested in tests/tasks/revisits/test_care_delivery.py), then the revisits step that reads
    the settled rows and completes their revisits."""
    from crm_db.session import session_scope
    from tasks.revisits.care_delivery import settle_care_revisits

    with session_scope(engine) as session:
        for mail in session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.kind == "revisit_care", OutboxMessage.status == OutboxStatus.PENDING
            )
        ):
            mail.status, mail.sent_at = OutboxStatus.SENT, at
    settle_care_revisits(engine, now=at, dry_run=False)


def seed_due_customers(engine: Engine, regions: tuple[str, ...] = ("EAST", "WEST")) -> None:
    """30 customers per region (a region, a branch, its managers), classes A, B, C in turn and
    pinned, none contacted yet: every one falls due for a revisit."""
    with session_scope(engine) as session:
        for code in regions:
            org = make_org(session, code)
            for i in range(30):
                make_customer(
                    session,
                    org,
                    abc_class=(AbcClass.A, AbcClass.B, AbcClass.C)[i % 3],
                    abc_pinned=True,
                    abc_pinned_reason="test: keep the class",
                )


def count_rows(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0
