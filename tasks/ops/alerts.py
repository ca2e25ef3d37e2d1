"""Queueing the failure alert: one outbox message per operator, keyed by run and address."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from crm_db.session import session_scope, shared_engine
from tasks.mail.outbox import EnqueueResult, NewMessage, enqueue
from tasks.ops.rules.failure_alert import KIND, FailedRun, alert_context, alert_key


def alert_messages(
    run: FailedRun, operators: Sequence[str], locale: str, ledger_run_id: int | None
) -> list[NewMessage]:
    context = alert_context(run)
    return [
        NewMessage(
            idempotency_key=alert_key(run.flow_run_id, address),
            kind=KIND,
            locale=locale,
            recipient_email=address,
            recipient_name="",
            customer_id=None,
            staff_id=None,
            context=context,
            run_id=ledger_run_id,
        )
        for address in operators
    ]


def queue_alerts(messages: Sequence[NewMessage], now: datetime) -> EnqueueResult:
    """Add the alerts in one transaction; keys already queued are counted as existing."""
    with session_scope(shared_engine()) as session:
        return enqueue(session, messages, now=now)
