"""IO: the context an account manager needs beside each customer in a digest - last contact and
its outcome, open complaints, last survey score, and the 90-day transaction trend.

Set-based queries per batch of customer ids (never one query per customer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, text

from crm_db.bulk import id_list
from crm_db.types import raw_utc_datetime

LAST_ISSUE_CHARS = 200
OPEN_COMPLAINT_STATES = ("new", "acknowledged", "in_progress", "waiting_on_customer")


@dataclass(frozen=True)
class CustomerContext:
    last_contact_date: date | None = None
    last_contact_outcome: str | None = None
    open_complaints: int = 0
    last_issue: str | None = None  # the latest complaint, in brief
    last_survey_score: int | None = None
    trend_90d_pct: float | None = None


_LAST_CONTACT = text(
    """
    SELECT h.customer_id, h.occurred_at, h.outcome
    FROM contact_history h
    JOIN (SELECT customer_id, MAX(occurred_at) AS latest FROM contact_history
          WHERE customer_id IN :ids GROUP BY customer_id) m
      ON m.customer_id = h.customer_id AND m.latest = h.occurred_at
    """
).bindparams(id_list("ids"))

_COMPLAINTS = text(
    """
    SELECT customer_id,
           SUM(CASE WHEN status IN :open_states THEN 1 ELSE 0 END) AS open_count,
           MAX(received_at) AS latest
    FROM complaints WHERE customer_id IN :ids GROUP BY customer_id
    """
).bindparams(id_list("ids"), bindparam("open_states", expanding=True))

_LATEST_COMPLAINT = text(
    """
    SELECT c.customer_id, c.customer_title, c.category FROM complaints c
    JOIN (SELECT customer_id, MAX(received_at) AS latest FROM complaints
          WHERE customer_id IN :ids GROUP BY customer_id) m
      ON m.customer_id = c.customer_id AND m.latest = c.received_at
    """
).bindparams(id_list("ids"))

_LAST_SURVEY = text(
    """
    SELECT i.customer_id, r.score
    FROM survey_responses r JOIN survey_invitations i ON i.id = r.invitation_id
    JOIN (SELECT i2.customer_id, MAX(r2.responded_at) AS latest
          FROM survey_responses r2 JOIN survey_invitations i2 ON i2.id = r2.invitation_id
          WHERE i2.customer_id IN :ids GROUP BY i2.customer_id) m
      ON m.customer_id = i.customer_id AND m.latest = r.responded_at
    """
).bindparams(id_list("ids"))

_TREND = text(
    """
    SELECT customer_id,
           SUM(CASE WHEN occurred_on > :mid THEN amount_fen ELSE 0 END) AS recent,
           SUM(CASE WHEN occurred_on <= :mid THEN amount_fen ELSE 0 END) AS previous
    FROM transactions
    WHERE customer_id IN :ids AND kind = 'purchase' AND occurred_on > :start
      AND occurred_on <= :as_of
    GROUP BY customer_id
    """
).bindparams(id_list("ids"))


def trend_pct(recent: int, previous: int) -> float | None:
    """Percent change of the last 90 days over the 90 before; None when there is no base."""
    if previous <= 0:
        return None
    return round((recent - previous) * 100.0 / previous, 1)


def load_customer_context(
    conn: Connection, customer_ids: Sequence[int], *, as_of: date, timezone: ZoneInfo
) -> dict[int, CustomerContext]:
    if not customer_ids:
        return {}
    ids = list(customer_ids)
    fields: dict[int, dict[str, Any]] = {cid: {} for cid in ids}
    _add_last_contact(conn, ids, timezone, fields)
    for row in conn.execute(_COMPLAINTS, {"ids": ids, "open_states": OPEN_COMPLAINT_STATES}):
        fields[row.customer_id]["open_complaints"] = int(row.open_count or 0)
    _add_last_issue(conn, ids, fields)
    for row in conn.execute(_LAST_SURVEY, {"ids": ids}):
        fields[row.customer_id]["last_survey_score"] = int(row.score)
    mid, start = as_of - timedelta(days=90), as_of - timedelta(days=180)
    for row in conn.execute(_TREND, {"ids": ids, "mid": mid, "start": start, "as_of": as_of}):
        fields[row.customer_id]["trend_90d_pct"] = trend_pct(int(row.recent), int(row.previous))
    return {cid: CustomerContext(**values) for cid, values in fields.items()}


def load_care_context(
    conn: Connection, customer_ids: Sequence[int], *, timezone: ZoneInfo
) -> dict[int, CustomerContext]:
    """Only what a care email says (last contact, last issue): two of the five queries."""
    ids = list(customer_ids)
    fields: dict[int, dict[str, Any]] = {cid: {} for cid in ids}
    if ids:
        _add_last_contact(conn, ids, timezone, fields)
        _add_last_issue(conn, ids, fields)
    return {cid: CustomerContext(**values) for cid, values in fields.items()}


def _add_last_contact(
    conn: Connection, ids: list[int], timezone: ZoneInfo, fields: dict[int, dict[str, Any]]
) -> None:
    for row in conn.execute(_LAST_CONTACT, {"ids": ids}).all():  # one fetch (see _assignee_groups)
        moment = raw_utc_datetime(row.occurred_at)
        assert moment is not None
        fields[row.customer_id]["last_contact_date"] = moment.astimezone(timezone).date()
        fields[row.customer_id]["last_contact_outcome"] = row.outcome


def load_last_issues(conn: Connection, customer_ids: Sequence[int]) -> dict[int, str]:
    """Each customer's latest complaint, in brief (customers without one are left out)."""
    fields: dict[int, dict[str, Any]] = {cid: {} for cid in customer_ids}
    if fields:
        _add_last_issue(conn, list(fields), fields)
    return {cid: values["last_issue"] for cid, values in fields.items() if values}


def _add_last_issue(conn: Connection, ids: list[int], fields: dict[int, dict[str, Any]]) -> None:
    for row in conn.execute(_LATEST_COMPLAINT, {"ids": ids}):
        # Customer-facing only: care emails quote it, so never the description (staff write
        # notes there): the title written for the customer, else the category.
        title = (row.customer_title or "").strip() or (row.category or "").strip()
        summary = title[:LAST_ISSUE_CHARS] or None
        fields[row.customer_id]["last_issue"] = summary
