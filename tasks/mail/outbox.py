"""Adding messages to the transactional outbox (``email_outbox``).

Flows call ``enqueue`` inside their own transaction, next to the outcome rows the messages
report on, so a decision and its emails commit (or roll back) together. Each message carries an
idempotency key (``kind:period:entity``); adding a key that exists is a no-op, so re-running a
flow or a Prefect retry never queues a message twice. The Message-ID is fixed here, once, and
reused by every delivery attempt, so a receiver can recognise a rare duplicate.

A message may carry attachments (an XLSX report, inline chart images referenced by ``cid:``):
they are checked and size-capped (``outbox_attachment_max_bytes`` in total per message) with the
rest of the message, and inserted into ``outbox_attachments`` in the same transaction as their
row - only for rows this call inserted (a key that exists keeps the attachments it has).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from crm_core.settings import get_settings
from crm_db.bulk import driver_timestamp, insert_rows
from crm_db.enums import OutboxStatus
from crm_db.models import OutboxAttachment, OutboxMessage
from tasks.mail.kinds import UnknownEmailKind, get_kind
from tasks.mail.message import Attachment, InvalidRecipient, check_attachment, validate_address

MAX_KEY_LENGTH = 200
MAX_LOCALE_LENGTH = 10
_COLUMNS = (
    "idempotency_key",
    "kind",
    "locale",
    "recipient_email",
    "recipient_name",
    "customer_id",
    "staff_id",
    "context",
    "status",
    "attempts",
    "next_attempt_at",
    "message_id",
    "run_id",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class NewMessage:
    idempotency_key: str
    kind: str
    locale: str
    recipient_email: str
    recipient_name: str
    customer_id: int | None
    staff_id: int | None
    context: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    inserted: int
    existing: int


class InvalidOutboxMessage(ValueError):
    """A message the outbox refuses. Names the idempotency key and the field; never echoes the
    value (addresses and names are personal data, and a bad value may be an injection attempt)."""

    def __init__(self, idempotency_key: str, field: str, problem: str) -> None:
        super().__init__(f"outbox message {idempotency_key!r}: {field} {problem}")
        self.idempotency_key = idempotency_key
        self.field = field
        self.problem = problem


def _printable(text: str) -> bool:
    return text.isprintable()


def checked_row(message: NewMessage, *, now: datetime, id_domain: str) -> dict[str, Any]:
    """The ``email_outbox`` row for ``message`` (ORM field names), or ``InvalidOutboxMessage``."""
    return _checked(message, now=now, id_domain=id_domain)[0]


def max_attachment_bytes() -> int:
    return get_settings().outbox_attachment_max_bytes


def check_attachments(message: NewMessage, *, cap: int) -> None:
    """``InvalidOutboxMessage`` naming the key and the attachment when one is malformed, two
    share a file name or Content-ID, or together they exceed ``cap`` bytes."""
    key = message.idempotency_key
    total = 0
    names: set[str] = set()
    cids: set[str] = set()
    for attachment in message.attachments:
        if not isinstance(attachment, Attachment):
            raise InvalidOutboxMessage(key, "attachments", "must hold Attachment objects")
        label = f"attachment {attachment.filename!r}"[:240]
        try:
            check_attachment(attachment)
        except ValueError as exc:
            raise InvalidOutboxMessage(key, label, str(exc)) from None
        if attachment.filename in names or (attachment.content_id or "") in cids:
            raise InvalidOutboxMessage(key, label, "repeats a file name or content_id")
        names.add(attachment.filename)
        if attachment.content_id:
            cids.add(attachment.content_id)
        total += len(attachment.data)
        if total > cap:
            raise InvalidOutboxMessage(
                key,
                label,
                f"brings the message's attachments to {total} bytes, over the cap of {cap} "
                "(outbox_attachment_max_bytes)",
            )


def _checked(message: NewMessage, *, now: datetime, id_domain: str) -> tuple[dict[str, Any], str]:
    """The checked row and its context as JSON text (serialised once: checking it is JSON
    already costs the serialisation)."""
    key = message.idempotency_key
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not _printable(key):
        shown = key[:MAX_KEY_LENGTH] if isinstance(key, str) else repr(key)
        raise InvalidOutboxMessage(
            shown, "idempotency_key", f"must be 1-{MAX_KEY_LENGTH} printable characters"
        )
    try:
        kind = get_kind(message.kind)
    except UnknownEmailKind as exc:
        raise InvalidOutboxMessage(key, "kind", str(exc)) from None
    locale = message.locale
    if not locale or len(locale) > MAX_LOCALE_LENGTH or not locale.replace("-", "").isalnum():
        raise InvalidOutboxMessage(key, "locale", "must look like 'zh-CN' or 'en'")
    try:
        email, name = validate_address(message.recipient_email, message.recipient_name)
    except InvalidRecipient as exc:
        raise InvalidOutboxMessage(key, f"recipient_{exc.field}", exc.problem) from None
    if kind.audience == "customer" and message.customer_id is None:
        raise InvalidOutboxMessage(
            key,
            "customer_id",
            f"is required for customer mail ({kind.name}): consent and "
            "unsubscribe links are per customer",
        )
    if not isinstance(message.context, dict):
        raise InvalidOutboxMessage(key, "context", "must be a dict")
    try:
        context_json = json.dumps(message.context, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidOutboxMessage(key, "context", f"is not JSON-serialisable ({exc})") from None
    return {
        "idempotency_key": key,
        "kind": message.kind,
        "locale": locale,
        "recipient_email": email,
        "recipient_name": name,
        "customer_id": message.customer_id,
        "staff_id": message.staff_id,
        "context": message.context,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "message_id": new_message_id(id_domain),
        "run_id": message.run_id,
        "created_at": now,
    }, context_json


def new_message_id(domain: str) -> str:
    """A globally unique Message-ID: 128 random bits at our sending domain."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def message_id_domain(mail_from: str) -> str:
    _, at, domain = parseaddr(mail_from)[1].rpartition("@")
    return domain if at and domain else "crm-flows.invalid"


def queued_keys(conn: Connection, keys: Collection[str]) -> set[str]:
    """Which of ``keys`` are already in the outbox: a re-run leaves those out of what it
    composes and counts them apart, so its counts say what it wrote, not what it prepared."""
    if not keys:
        return set()
    found = conn.execute(
        select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.in_(list(keys)))
    )
    return set(found.scalars())


def enqueue(
    target: Connection | Session,
    messages: Iterable[NewMessage],
    *,
    now: datetime,
    id_domain: str | None = None,
    attachment_cap: int | None = None,
) -> EnqueueResult:
    """Add ``messages`` to the outbox in the caller's transaction (nothing is committed here).

    Every message is validated before anything is inserted: one bad address (or attachment,
    or attachments over ``attachment_cap``, default the ``outbox_attachment_max_bytes``
    setting) raises
    ``InvalidOutboxMessage`` (naming its idempotency key and field) and inserts nothing. Keys
    already in the outbox, or repeated within ``messages``, are counted as ``existing``.

    Rows go to the driver as plain tuples in chunks (``crm_db.bulk.insert_rows``): flows queue
    tens of thousands of messages a run, and typed per-row binding would cost ~20 us a row.
    """
    conn = target.connection() if isinstance(target, Session) else target
    prepared = prepare(
        messages,
        now=now,
        dialect=conn.dialect.name,
        id_domain=id_domain,
        attachment_cap=attachment_cap,
    )
    return prepared.insert(conn)


@dataclass(frozen=True)
class PreparedMessages:
    """Messages validated and converted to outbox rows, ready to insert. Preparing is the
    Python half of ``enqueue``: a flow can do it before opening its write transaction, so the
    write lock is held for the inserts only."""

    rows: list[tuple[Any, ...]]
    repeated: int = 0  # keys repeated within the messages (dropped)
    # Attachments by the Message-ID fixed for their row (unique, and new: a row found by it
    # after the insert is one this call inserted).
    attachments: dict[str, tuple[Attachment, ...]] = field(default_factory=dict)

    def for_customers(self, customer_ids: Container[int]) -> PreparedMessages:
        """Only the rows for these customers (e.g. those whose revisit this run created)."""
        customer = _COLUMNS.index("customer_id")
        kept = [row for row in self.rows if row[customer] in customer_ids]
        return PreparedMessages(kept, self.repeated, self.attachments)

    def insert(self, conn: Connection) -> EnqueueResult:
        # A key that exists inserts nothing, so it is not counted as inserted.
        inserted = insert_rows(
            conn, "email_outbox", _COLUMNS, self.rows, "ON CONFLICT (idempotency_key) DO NOTHING"
        )
        if self.attachments and inserted:
            _insert_attachments(conn, self.attachments)
        return EnqueueResult(inserted=inserted, existing=len(self.rows) - inserted + self.repeated)


def _insert_attachments(conn: Connection, by_message_id: dict[str, tuple[Attachment, ...]]) -> None:
    outbox = cast(Table, OutboxMessage.__table__)
    wanted = list(by_message_id)
    ids: dict[str, int] = {}
    for start in range(0, len(wanted), 1000):
        statement = select(outbox.c.message_id, outbox.c.id).where(
            outbox.c.message_id.in_(wanted[start : start + 1000])
        )
        ids.update({mid: row_id for mid, row_id in conn.execute(statement).all()})
    rows = [
        {
            "outbox_id": ids[mid],
            "position": position,
            "filename": a.filename,
            "content_type": a.content_type,
            "content_id": a.content_id,
            "data": a.data,
        }
        for mid, attachments in by_message_id.items()
        if mid in ids
        for position, a in enumerate(attachments)
    ]
    if rows:
        conn.execute(insert(cast(Table, OutboxAttachment.__table__)), rows)


def prepare(
    messages: Iterable[NewMessage],
    *,
    now: datetime,
    dialect: str,
    id_domain: str | None = None,
    attachment_cap: int | None = None,
) -> PreparedMessages:
    """Validate ``messages`` (``InvalidOutboxMessage`` on the first bad one) and build their rows
    for ``dialect``; the Message-ID of each is fixed here."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    domain = id_domain or message_id_domain(get_settings().mail_from)
    stamp = driver_timestamp(now, dialect)
    rows: list[tuple[Any, ...]] = []
    attachments: dict[str, tuple[Attachment, ...]] = {}
    seen: set[str] = set()
    repeated = 0
    for message in messages:
        row, context_json = _checked(message, now=now, id_domain=domain)
        key = row["idempotency_key"]
        if message.attachments:
            if attachment_cap is None:
                attachment_cap = max_attachment_bytes()
            check_attachments(message, cap=attachment_cap)
        if key in seen:
            repeated += 1
            continue
        seen.add(key)
        if message.attachments:
            attachments[row["message_id"]] = tuple(message.attachments)
        rows.append(
            (
                key,
                row["kind"],
                row["locale"],
                row["recipient_email"],
                row["recipient_name"],
                row["customer_id"],
                row["staff_id"],
                context_json,  # json.dumps, as the JSON column would store it
                row["status"].value,
                row["attempts"],
                stamp,
                row["message_id"],
                row["run_id"],
                stamp,
            )
        )
    return PreparedMessages(rows, repeated, attachments)


__all__ = [
    "Attachment",
    "EnqueueResult",
    "InvalidOutboxMessage",
    "NewMessage",
    "PreparedMessages",
    "enqueue",
    "prepare",
    "message_id_domain",
    "new_message_id",
]
