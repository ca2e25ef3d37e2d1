"""IO shared by both places that send care emails: planning (for the email-channel revisits it
creates, while it has them in hand) and ``queue_care_emails`` (for open ones left over, e.g.
deferred by the contact cap).

A care email goes to a customer with a deliverable address who has not opted out and has had no
customer-facing email within the contact cap; queuing it completes the revisit and records the
contact, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, text

from crm_db.bulk import driver_timestamp, id_list, insert_rows
from crm_db.types import raw_utc_datetime
from tasks.mail.message import is_valid_recipient
from tasks.mail.outbox import NewMessage
from tasks.rules.revisits import within_contact_cap

CARE_KIND = "revisit_care"
DEFAULT_CONTACT_CAP_DAYS = 7

# Pending, sending or sent; NOT IN keeps PostgreSQL off the status index (see
# revisit_planning._DUE_CANDIDATES).
_LAST_CUSTOMER_EMAIL = text(
    """
    SELECT customer_id, MAX(created_at) AS latest FROM email_outbox
    WHERE customer_id IN :ids AND status NOT IN ('failed', 'suppressed')
    GROUP BY customer_id
    """
).bindparams(id_list("ids"))

CARE_CONTACT_NOTE = "care email queued"  # on the contact a care email records
_CONTACT_COLUMNS = (
    "customer_id",
    "staff_id",
    "channel",
    "outcome",
    "occurred_at",
    "revisit_id",
    "notes",
)


@dataclass(frozen=True, slots=True)
class CareRecipient:
    customer_id: int
    name: str
    email: str | None
    email_undeliverable: bool
    locale: str | None
    last_email: datetime | None = None
    last_contact: datetime | None = None


def last_customer_emails(
    conn: Connection, customer_ids: Sequence[int]
) -> dict[int, datetime | None]:
    """When each customer was last sent (or is about to be sent) a customer-facing email."""
    if not customer_ids:
        return {}
    rows = conn.execute(_LAST_CUSTOMER_EMAIL, {"ids": list(customer_ids)})
    return {row.customer_id: raw_utc_datetime(row.latest) for row in rows}


def care_skip_reason(
    *,
    opted_out: bool,
    email: str | None,
    name: str,
    undeliverable: bool,
    last_sent: datetime | None,
    now: datetime,
    cap_days: int,
) -> str | None:
    """Why no care email goes out now (``None``: send it)."""
    if opted_out:
        return "opted_out"
    if not email or undeliverable:
        return "no_email"
    if not is_valid_recipient(email, name):
        return "invalid_email"  # bad contact data: reported, never sent, the batch goes on
    if not within_contact_cap(last_customer_email_at=last_sent, now=now, cap_days=cap_days):
        return "contact_cap"
    return None


def care_message(
    *,
    as_of: date,
    recipient: CareRecipient,
    manager: tuple[str, str | None] | None,
    last_contact_date: date | None,
    last_issue: str | None,
    run_id: int | None,
) -> NewMessage:
    assert recipient.email is not None  # care_skip_reason let it through
    manager_name, manager_phone = manager or ("", None)
    return NewMessage(
        # kind:period:entity - one care email per customer and day (the contact cap allows one
        # a week anyway). Not keyed by revisit: planning builds it before the revisit has an id.
        idempotency_key=f"{CARE_KIND}:{as_of.isoformat()}:customer:{recipient.customer_id}",
        kind=CARE_KIND,
        locale=recipient.locale or "zh-CN",
        recipient_email=recipient.email,
        recipient_name=recipient.name,
        customer_id=recipient.customer_id,
        staff_id=None,
        context={
            "customer_name": recipient.name,
            "manager_name": manager_name or "",
            "manager_phone": manager_phone,
            "last_contact_date": last_contact_date.isoformat() if last_contact_date else None,
            "last_issue": last_issue,
            # feedback_url and unsubscribe_url are signed by delivery (EmailKind.delivery_keys).
        },
        run_id=run_id,
    )


def record_care_contacts(
    conn: Connection, sent: Sequence[tuple[int, int, int | None]], now: datetime
) -> None:
    """One completed email contact per ``(revisit_id, customer_id, staff_id)`` (driver-level
    bulk insert: the contact history is the hottest insert of the run)."""
    if not sent:
        return
    stamp = driver_timestamp(now, conn.dialect.name)
    rows = [
        (customer_id, staff_id, "email", "completed", stamp, revisit_id, CARE_CONTACT_NOTE)
        for revisit_id, customer_id, staff_id in sent
    ]
    insert_rows(conn, "contact_history", _CONTACT_COLUMNS, rows)


__all__ = [
    "CARE_CONTACT_NOTE",
    "CARE_KIND",
    "DEFAULT_CONTACT_CAP_DAYS",
    "CareRecipient",
    "care_message",
    "care_skip_reason",
    "last_customer_emails",
    "record_care_contacts",
]
