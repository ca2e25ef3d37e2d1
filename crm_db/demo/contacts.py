"""Contact history (客户档案): visits, calls, emails and surveys with outcomes, per customer chunk.

Most customers (about 88 %) have at least one contact in the last two years, so "last contact"
exists; company and fleet customers are contacted more often and more often in person. A
contact after the account manager left is recorded against the station manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from crm_db.demo import vocab
from crm_db.demo.columns import none_where
from crm_db.demo.customers import CustomerChunk
from crm_db.demo.organisation import OrgPlan
from crm_db.demo.rng import stream
from crm_db.demo.timeline import DayText, Timeline

CONTACT_COLUMNS = (
    "id",
    "external_id",
    "customer_id",
    "staff_id",
    "channel",
    "outcome",
    "occurred_at",
    "revisit_id",
    "notes",
)

NO_CONTACT_SHARE: Final = 0.12
EXTRA_CONTACTS: Final = np.array([0.6, 1.4, 2.4])  # Poisson mean beyond the first, per card
MAX_CONTACTS: Final = 6
HISTORY_DAYS: Final = 730
CHANNELS: Final = np.array(["visit", "phone", "email", "survey"], dtype=object)
CHANNEL_P: Final = np.array(
    [
        [0.10, 0.45, 0.35, 0.10],  # personal
        [0.30, 0.40, 0.20, 0.10],  # company
        [0.45, 0.35, 0.10, 0.10],  # fleet
    ]
)
OUTCOMES: Final = np.array(["completed", "no_answer", "rescheduled", "issue_raised"], dtype=object)
OUTCOME_CUMULATIVE: Final = np.cumsum([0.72, 0.14, 0.08, 0.06])
EMAIL, SURVEY = 2, 3
_NOTES: Final = np.array(list(vocab.CONTACT_NOTES), dtype=object)


@dataclass(frozen=True)
class ContactChunk:
    rows: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.rows)


def generate_contacts(
    seed: int,
    chunk: int,
    first_id: int,
    customers: CustomerChunk,
    org: OrgPlan,
    timeline: Timeline,
    days: DayText,
) -> ContactChunk:
    rng = stream(seed, "contacts", chunk)
    n = len(customers)
    card = customers.card_type
    counts = np.minimum(1 + rng.poisson(EXTRA_CONTACTS[card]), MAX_CONTACTS)
    counts[rng.random(n) < NO_CONTACT_SHARE] = 0
    owner = np.repeat(np.arange(n), counts)
    total = len(owner)

    first = np.maximum(customers.first_card[owner], timeline.as_of_ord - HISTORY_DAYS)
    span = np.maximum(timeline.as_of_ord - first, 1)
    day = first + (rng.random(total) * span).astype(np.int64)
    seconds = 3600 + rng.integers(0, 9 * 3600, total)  # 09:00-18:00 Beijing time, in UTC

    # Inverse-CDF draw per row, since each card type has its own channel mix.
    cumulative = np.cumsum(CHANNEL_P, axis=1)[card[owner]]
    channel = (rng.random(total)[:, None] > cumulative).sum(axis=1)
    channel = np.minimum(channel, len(CHANNELS) - 1)
    outcome = np.minimum(np.searchsorted(OUTCOME_CUMULATIVE, rng.random(total)), 3)
    # Nobody reschedules an email: it was read (completed) or not (no answer).
    outcome = np.where((channel >= EMAIL) & (outcome >= 2), 0, outcome)

    manager = customers.account_manager[owner]
    gone = day >= org.staff_left_on[manager]
    staff = np.where(gone, org.branch_managers[customers.branch[owner] - 1], manager)
    staff_column = none_where(channel == SURVEY, staff)  # surveys are sent by the system
    notes = _NOTES[rng.integers(0, len(_NOTES), total)]

    order = np.lexsort((seconds, day, owner))
    ids = np.arange(first_id, first_id + total, dtype=np.int64)
    nothing = [None] * total
    rows = list(
        zip(
            ids.tolist(),
            nothing,
            customers.ids[owner][order].tolist(),
            staff_column[order].tolist(),
            CHANNELS[channel[order]].tolist(),
            OUTCOMES[outcome[order]].tolist(),
            days.stamps(day[order], seconds[order]),
            nothing,
            notes[order].tolist(),
            strict=True,
        )
    )
    return ContactChunk(rows)
