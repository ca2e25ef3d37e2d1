"""IO for a manager's full list of open revisits (the ``crm web`` page a digest links to, because
a digest lists at most ``DIGEST_MAX_ITEMS``): who the list is for, how many revisits are open, and
one page of them at a time.

Pages are read by keyset (due date, then id: most overdue first, as in the digest), so page 50
of a long list costs what page 1 does; each page is one indexed read of ``page_size`` rows.
The rows hold the customer's full phone: the page is for the staff member the link was sent to,
and nothing here goes to a log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, and_, case, func, or_, select

from crm_db.enums import ContactChannel, RevisitStatus
from crm_db.models import Customer, Revisit, Staff
from crm_db.session import session_scope

PAGE_SIZE = 200

_CURSOR = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{1,18})")


@dataclass(frozen=True)
class ListOwner:
    staff_id: int
    name: str
    locale: str
    active: bool


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after the revisit due on ``due_on`` with id ``revisit_id``."""

    due_on: date
    revisit_id: int

    def encode(self) -> str:
        return f"{self.due_on.isoformat()}_{self.revisit_id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """The cursor in ``?after=``; ``None`` when absent or malformed (the first page)."""
        match = _CURSOR.fullmatch(text or "")
        if match is None:
            return None
        try:
            return cls(date.fromisoformat(match.group(1)), int(match.group(2)))
        except ValueError:
            return None


@dataclass(frozen=True)
class ListRow:
    revisit_id: int
    customer_name: str
    phone: str | None
    abc_class: str
    channel: ContactChannel
    due_on: date
    needs_reassignment: bool


@dataclass(frozen=True)
class ListPage:
    total: int  # open revisits of the owner, all pages
    overdue: int  # of them, due before ``today``
    rows: list[ListRow]
    next_cursor: Cursor | None  # None on the last page


def load_owner(engine: Engine, staff_id: int) -> ListOwner | None:
    with session_scope(engine) as session:
        row = session.execute(
            select(Staff.id, Staff.name, Staff.locale, Staff.active).where(Staff.id == staff_id)
        ).one_or_none()
    return None if row is None else ListOwner(row[0], row[1], row[2], bool(row[3]))


def load_page(
    engine: Engine,
    staff_id: int,
    *,
    today: date,
    after: Cursor | None,
    page_size: int = PAGE_SIZE,
) -> ListPage:
    """One page of ``staff_id``'s open revisits, most overdue first."""
    if page_size < 1:
        raise ValueError(f"page_size must be positive, got {page_size}")
    mine = and_(Revisit.assignee_id == staff_id, Revisit.status == RevisitStatus.OPEN)
    with session_scope(engine) as session:
        total, overdue = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((Revisit.due_on < today, 1), else_=0)), 0),
            ).where(mine)
        ).one()
        query = (
            select(
                Revisit.id,
                Customer.name,
                Customer.phone,
                Revisit.abc_class,
                Revisit.channel,
                Revisit.due_on,
                Revisit.needs_reassignment,
            )
            .join(Customer, Customer.id == Revisit.customer_id)
            .where(mine)
            .order_by(Revisit.due_on, Revisit.id)
            .limit(page_size + 1)
        )
        if after is not None:
            query = query.where(
                or_(
                    Revisit.due_on > after.due_on,
                    and_(Revisit.due_on == after.due_on, Revisit.id > after.revisit_id),
                )
            )
        fetched = session.execute(query).tuples().all()
    rows = [
        ListRow(
            revisit_id=r[0],
            customer_name=r[1],
            phone=r[2] or None,
            abc_class=r[3].value,
            channel=r[4],
            due_on=r[5],
            needs_reassignment=bool(r[6]),
        )
        for r in fetched[:page_size]
    ]
    more = len(fetched) > page_size
    next_cursor = Cursor(rows[-1].due_on, rows[-1].revisit_id) if more and rows else None
    return ListPage(int(total), int(overdue), rows, next_cursor)


_DIALABLE = re.compile(r"\+?[0-9]+")


def tel_href(phone: str | None) -> str | None:
    """``tel:`` URI of a phone number (RFC 3966 global or local digits, separators dropped);
    ``None`` when it holds anything but digits, an optional leading ``+`` and separators
    (spaces, dashes, dots, brackets), so a stored value never becomes anything but a number."""
    if not phone:
        return None
    compact = re.sub(r"[\s\-.()]", "", phone)
    if not _DIALABLE.fullmatch(compact) or len(compact.lstrip("+")) < 3:
        return None
    return f"tel:{compact}"


__all__ = [
    "PAGE_SIZE",
    "Cursor",
    "ListOwner",
    "ListPage",
    "ListRow",
    "load_owner",
    "load_page",
    "tel_href",
]
