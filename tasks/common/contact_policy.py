"""IO for the contact policy: the facts ``tasks.rules.contact_policy.decide`` needs, for a whole
chunk of customers in one statement (never one query per customer).

The last customer-facing email is the newest outbox row of *any* kind for the customer that is
pending, sending or sent (failed and suppressed ones never reached them); the last survey
invitation is the newest ``survey_invitations`` row. Both are select-list subqueries, so they
run for the chunk's rows only, each on the customer's index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from crm_db.bulk import id_list
from crm_db.types import raw_utc_datetime
from tasks.mail.message import is_valid_recipient
from tasks.rules.contact_policy import ContactFacts


# The facts' select-list over a customers row aliased ``c``: a flow that selects its due customers
# can add these columns to its own statement (one read per chunk) and turn each row into
# ``ContactFacts`` with ``facts_from_row`` (or, positionally, ``facts_from_values``).
# "Not failed or suppressed" as NOT IN on purpose (see tasks.revisits.planning._DUE_CANDIDATES):
# an IN list lets PostgreSQL pick the status index and scan every pending row per customer.
def fact_columns(times_needed_when: str = "1 = 1") -> str:
    """The facts' columns; the two last-message times are computed only for the rows where
    ``times_needed_when`` (SQL over ``c``) holds - a flow passes the condition under which its
    decision can reach the contact cap or fatigue at all (consent and an address), so the
    customers it cannot reach anyway cost no subqueries (their times read NULL, which no
    decision for them looks at)."""
    return f"""
    c.name, c.email, c.email_undeliverable, c.phone, c.marketing_opt_out,
    c.survey_opt_out, c.unsubscribed_at IS NOT NULL AS unsubscribed,
    CASE WHEN {times_needed_when} THEN
      (SELECT MAX(e.created_at) FROM email_outbox e
       WHERE e.customer_id = c.id AND e.status NOT IN ('failed', 'suppressed'))
    END AS last_email,
    CASE WHEN {times_needed_when} THEN
      (SELECT MAX(s.created_at) FROM survey_invitations s WHERE s.customer_id = c.id)
    END AS last_survey
"""


FACT_COLUMNS = fact_columns()

_FACTS = text(
    f"""
    SELECT c.id, {FACT_COLUMNS}
    FROM customers c
    WHERE c.id IN :ids
    """
).bindparams(id_list("ids"))


def facts_from_row(customer_id: int, row: Any) -> ContactFacts:
    """``ContactFacts`` from a row holding the ``FACT_COLUMNS`` (by name)."""
    return facts_from_values(
        customer_id,
        row.name,
        row.email,
        row.email_undeliverable,
        row.phone,
        row.marketing_opt_out,
        row.survey_opt_out,
        row.unsubscribed,
        row.last_email,
        row.last_survey,
    )


def facts_from_values(
    customer_id: int,
    name: str,
    email: str | None,
    undeliverable: Any,
    phone: str | None,
    marketing_opt_out: Any,
    survey_opt_out: Any,
    unsubscribed: Any,
    last_email: Any,
    last_survey: Any,
) -> ContactFacts:
    """``ContactFacts`` from the ``FACT_COLUMNS`` values in their order (for tuple rows)."""
    has_email = bool(email) and not undeliverable
    return ContactFacts(
        customer_id=customer_id,
        has_email=has_email,
        email_valid=has_email and is_valid_recipient(email, name),
        has_phone=bool(phone),
        marketing_opt_out=bool(marketing_opt_out),
        survey_opt_out=bool(survey_opt_out),
        unsubscribed=bool(unsubscribed),
        last_email_at=raw_utc_datetime(last_email),
        last_survey_at=raw_utc_datetime(last_survey),
    )


def load_contact_facts(conn: Connection, customer_ids: Sequence[int]) -> dict[int, ContactFacts]:
    """The contact facts of ``customer_ids`` (unknown ids are left out)."""
    if not customer_ids:
        return {}
    return {
        row.id: facts_from_row(row.id, row)
        for row in conn.execute(_FACTS, {"ids": sorted(set(customer_ids))})
    }


__all__ = [
    "FACT_COLUMNS",
    "fact_columns",
    "facts_from_row",
    "facts_from_values",
    "load_contact_facts",
]
