"""Survey campaigns, invitations and responses: quarterly NPS waves and post-complaint CSAT.

Invitations follow the survey rules the flows enforce: only reachable customers (a plausible
email, no survey opt-out), nobody in two consecutive periodic waves (90-day fatigue), complaint
customers only in post-complaint surveys, sent N days after the resolution. Older invitations
are responded or expired; the current wave still has pending, sent and reminded ones. Demo
token hashes come from the seed, so demo invitations carry no working links.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import numpy as np

from crm_db.demo import vocab
from crm_db.demo.complaints import ResolvedComplaint
from crm_db.demo.population import Customers
from crm_db.demo.rng import stream
from crm_db.demo.timeline import LOCAL_TZ, Timeline, month_start, ts_text

CAMPAIGN_COLUMNS = ("id", "code", "kind", "trigger", "period", "created_at")
INVITATION_COLUMNS = (
    "id",
    "campaign_id",
    "customer_id",
    "complaint_id",
    "kind",
    "token_hash",
    "status",
    "created_at",
    "sent_at",
    "reminded_at",
    "expires_at",
)
RESPONSE_COLUMNS = (
    "id",
    "invitation_id",
    "score",
    "comment",
    "source",
    "responded_at",
    "recorded_at",
)

WAVES: Final = 4  # the as-of quarter and the three before
WAVE_SHARE: Final = 0.04  # of reachable customers, per wave
POST_COMPLAINT_DELAY: Final = timedelta(days=3)
REMINDER_AFTER: Final = timedelta(days=5)
EXPIRES_AFTER: Final = timedelta(days=14)
RESPONSE_RATE: Final = 0.35
NPS_P: Final = (0.03, 0.02, 0.02, 0.03, 0.03, 0.05, 0.07, 0.12, 0.18, 0.22, 0.23)
CSAT_P: Final = (0.08, 0.08, 0.19, 0.35, 0.30)  # scores 1..5
PENDING_SHARE: Final = 0.1  # of the current wave's most recent invitations: not sent yet


@dataclass(frozen=True)
class SurveySet:
    campaigns: list[tuple[Any, ...]]
    invitations: list[tuple[Any, ...]]
    responses: list[tuple[Any, ...]]


def _quarter(day: date, back: int) -> tuple[str, date]:
    start = month_start(day, back * 3 + (day.month - 1) % 3)
    return f"{start.year}Q{(start.month - 1) // 3 + 1}", start


def _office_hours(day: date, rng: np.random.Generator) -> datetime:
    moment = datetime.combine(day, time(9, 0), LOCAL_TZ) + timedelta(
        seconds=int(rng.integers(0, 9 * 3600))
    )
    return moment.astimezone(UTC)


class _Builder:
    def __init__(self, seed: int, timeline: Timeline, rng: np.random.Generator) -> None:
        self.seed = seed
        self.now = timeline.reference
        self.rng = rng
        self.campaigns: list[tuple[Any, ...]] = []
        self.invitations: list[tuple[Any, ...]] = []
        self.responses: list[tuple[Any, ...]] = []

    def campaign(self, code: str, kind: str, trigger: str, period: str, created: datetime) -> int:
        campaign_id = len(self.campaigns) + 1
        self.campaigns.append((campaign_id, code, kind, trigger, period, ts_text(created)))
        return campaign_id

    def invite(
        self,
        campaign_id: int,
        customer_id: int,
        complaint_id: int | None,
        sent: datetime,
        kind: str,
        pending: bool = False,
    ) -> None:
        invitation_id = len(self.invitations) + 1
        token = f"crm-demo:{self.seed}:invitation:{invitation_id}"
        expires = sent + EXPIRES_AFTER
        answered = None
        if not pending and self.rng.random() < RESPONSE_RATE:
            window = min(expires, self.now) - sent
            answered = sent + window * float(self.rng.uniform(0.02, 0.98))
        reminded = sent + REMINDER_AFTER
        if pending:
            status, sent_at, reminded_at = "pending", None, None
        elif answered is not None:
            status, sent_at = "responded", sent
            reminded_at = reminded if reminded < answered else None
        elif expires <= self.now:
            status, sent_at, reminded_at = "expired", sent, reminded
        elif reminded <= self.now:
            status, sent_at, reminded_at = "reminded", sent, reminded
        else:
            status, sent_at, reminded_at = "sent", sent, None
        self.invitations.append(
            (
                invitation_id,
                campaign_id,
                customer_id,
                complaint_id,
                kind,
                hashlib.sha256(token.encode()).hexdigest(),
                status,
                ts_text(sent),
                ts_text(sent_at) if sent_at else None,
                ts_text(reminded_at) if reminded_at else None,
                ts_text(expires),
            )
        )
        if answered is not None:
            if kind == "nps":
                score = int(self.rng.choice(11, p=NPS_P))
            else:
                score = 1 + int(self.rng.choice(5, p=CSAT_P))
            comment = vocab.SURVEY_COMMENTS[int(self.rng.integers(len(vocab.SURVEY_COMMENTS)))]
            source = "import" if self.rng.random() < 0.1 else "web"
            self.responses.append(
                (
                    len(self.responses) + 1,
                    invitation_id,
                    score,
                    comment,
                    source,
                    ts_text(answered),
                    ts_text(answered),
                )
            )


def generate_surveys(
    seed: int,
    customers: Customers,
    complainants: frozenset[int],
    resolved: list[ResolvedComplaint],
    timeline: Timeline,
) -> SurveySet:
    rng = stream(seed, "surveys")
    builder = _Builder(seed, timeline, rng)
    now = timeline.reference

    eligible = customers.reachable.copy()
    if complainants:
        eligible[np.fromiter(complainants, dtype=np.int64) - 1] = False
    # One shuffled queue; each wave takes the next customers, so waves never share a customer.
    queue = rng.permutation(np.flatnonzero(eligible))
    cursor = 0
    per_wave = max(3, round(WAVE_SHARE * len(queue)))
    for back in range(WAVES - 1, -1, -1):
        period, start = _quarter(timeline.as_of, back)
        created = _office_hours(start + timedelta(days=1), rng)
        campaign_id = builder.campaign(f"nps:{period}", "nps", "periodic", period, created)
        current = back == 0
        take = queue[cursor : cursor + per_wave]
        cursor += len(take)
        # A wave is sent over its first weeks; the current one up to yesterday.
        last = (
            min(start + timedelta(days=45), timeline.last_day) if not current else timeline.last_day
        )
        spread = max((last - start).days, 1)
        offsets = np.sort(rng.integers(0, spread, len(take)))
        pending_from = (
            len(take) - max(1, round(PENDING_SHARE * len(take))) if current else len(take)
        )
        for i, (c, offset) in enumerate(zip(take.tolist(), offsets.tolist(), strict=True)):
            if customers.first_card[c] >= (start + timedelta(days=offset)).toordinal():
                continue  # not a customer yet on that day
            sent = _office_hours(start + timedelta(days=offset), rng)
            if sent >= now:
                continue
            builder.invite(campaign_id, c + 1, None, sent, "nps", pending=i >= pending_from)

    csat_campaigns: dict[str, int] = {}
    invited: set[tuple[int, int]] = set()
    for item in sorted(resolved, key=lambda r: (r.resolved_at, r.complaint_id)):
        sent = _office_hours((item.resolved_at + POST_COMPLAINT_DELAY).date(), rng)
        if sent >= now or not customers.reachable[item.customer_id - 1]:
            continue
        period = sent.astimezone(LOCAL_TZ).strftime("%Y-%m")
        if period not in csat_campaigns:
            first = datetime.combine(date.fromisoformat(period + "-01"), time(0, 0), LOCAL_TZ)
            csat_campaigns[period] = builder.campaign(
                f"csat:post-complaint:{period}", "csat", "post_complaint", period, first
            )
        key = (csat_campaigns[period], item.customer_id)
        if key in invited:
            continue  # one invitation per customer per campaign
        invited.add(key)
        builder.invite(key[0], item.customer_id, item.complaint_id, sent, "csat")
    return SurveySet(builder.campaigns, builder.invitations, builder.responses)
