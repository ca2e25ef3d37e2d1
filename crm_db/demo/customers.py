"""Customers, generated a chunk at a time with numpy (no ORM objects, no per-row random calls).

Personal cards carry a person's name (about 5 % English names with locale ``en``), company and
fleet cards a company's. Some emails are missing and a few look invalid; a few percent of
customers opted out of marketing or surveys. A/B/C classes are left NULL (classification is a
flow) except for a handful of pinned customers with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crm_db.demo import vocab
from crm_db.demo.columns import none_where, objects
from crm_db.demo.organisation import OrgPlan
from crm_db.demo.rng import stream
from crm_db.demo.timeline import DayText, Timeline

CUSTOMER_COLUMNS = (
    "id",
    "external_id",
    "name",
    "email",
    "email_undeliverable",
    "phone",
    "locale",
    "timezone",
    "card_type",
    "branch_id",
    "account_manager_id",
    "marketing_opt_out",
    "survey_opt_out",
    "unsubscribed_at",
    "abc_class",
    "abc_pinned",
    "abc_pinned_reason",
    "classified_at",
    "value_quadrant",
    "first_card_on",
    "created_at",
)

CARD_TYPES = ("personal", "company", "fleet")  # index = card type code in the arrays
CARD_TYPE_SHARES = (0.75, 0.18, 0.07)
ENGLISH_SHARE = 0.05
NO_EMAIL_SHARE = 0.08
INVALID_EMAIL_SHARE = 0.01
UNDELIVERABLE_SHARE = 0.005
NO_PHONE_SHARE = 0.03
MARKETING_OPT_OUT_SHARE = 0.03
SURVEY_OPT_OUT_SHARE = 0.02
NEW_CUSTOMER_SHARE = 0.12  # first card inside the transaction window (new customers)
PIN_COUNT_MAX = 12


_SURNAME = objects(s for s, _, _ in vocab.SURNAMES)
_SURNAME_PY = objects(p for _, p, _ in vocab.SURNAMES)
_SURNAME_P = np.array([w for _, _, w in vocab.SURNAMES]) / sum(w for _, _, w in vocab.SURNAMES)
_GIVEN = objects([c for c, _ in vocab.GIVEN_CHARS] + [""])  # last entry: no second char
_GIVEN_PY = objects([p for _, p in vocab.GIVEN_CHARS] + [""])
_EN_FIRST = objects(vocab.EN_FIRST)
_EN_LAST = objects(vocab.EN_LAST)
_EN_FIRST_LOW = objects(n.lower() for n in vocab.EN_FIRST)
_EN_LAST_LOW = objects(n.lower() for n in vocab.EN_LAST)
_COMPANY_PREFIX = objects(c for c, _ in vocab.COMPANY_PREFIXES)
_COMPANY_PY = objects(p for _, p in vocab.COMPANY_PREFIXES)
_COMPANY_EN = objects(p.capitalize() for _, p in vocab.COMPANY_PREFIXES)
_TRADE = objects(vocab.COMPANY_TRADES)
_SUFFIX = objects(vocab.COMPANY_SUFFIXES)
_FLEET = objects(vocab.FLEET_TRADES)
_EN_SUFFIX = objects(vocab.EN_COMPANY_SUFFIXES)
_DOMAIN = objects(vocab.EMAIL_DOMAINS)
_MOBILE = objects(vocab.MOBILE_PREFIXES)
_AREA = objects(vocab.LANDLINE_AREA_CODES)
_CARD = objects(CARD_TYPES)
_LOCALE = objects(("zh-CN", "en"))
# Ways an address ends up invalid in a real CRM: a missing domain, a typo, a space, no "@".
_INVALID = objects(("@", "@example", "#example.com", " @example.com", "@@example.com"))


@dataclass(frozen=True)
class PinnedCustomers:
    """The handful of customers whose class is pinned by a person, with the reason."""

    ids: npt.NDArray[np.int64]
    classes: tuple[str, ...]
    reasons: tuple[str, ...]

    def lookup(self, customer_id: int) -> tuple[str, str] | None:
        hits = np.flatnonzero(self.ids == customer_id)
        if hits.size == 0:
            return None
        i = int(hits[0])
        return self.classes[i], self.reasons[i]


def plan_pins(seed: int, customers: int) -> PinnedCustomers:
    rng = stream(seed, "pins")
    count = min(PIN_COUNT_MAX, max(3, customers // 100), customers)
    ids = np.sort(rng.choice(np.arange(1, customers + 1), size=count, replace=False))
    picks = [vocab.PIN_REASONS[i % len(vocab.PIN_REASONS)] for i in range(count)]
    return PinnedCustomers(ids, tuple(c for c, _ in picks), tuple(r for _, r in picks))


@dataclass(frozen=True)
class CustomerChunk:
    """The columns of one chunk, plus the attributes later generators need."""

    ids: npt.NDArray[np.int64]
    branch: npt.NDArray[np.int64]  # branch id
    account_manager: npt.NDArray[np.int64]
    card_type: npt.NDArray[np.int64]  # index into CARD_TYPES
    first_card: npt.NDArray[np.int64]  # ordinal
    has_email: npt.NDArray[np.bool_]  # a plausible address (not missing, not invalid-looking)
    survey_opt_out: npt.NDArray[np.bool_]
    pinned_a: npt.NDArray[np.bool_]
    rows: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.ids)


def _names(
    rng: np.random.Generator, n: int, card: npt.NDArray[np.int64], english: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Display names and the ASCII stems their email local parts are made of."""
    s = rng.choice(len(_SURNAME), size=n, p=_SURNAME_P)
    g1 = rng.integers(0, len(_GIVEN) - 1, n)
    g2 = np.where(rng.random(n) < 0.7, rng.integers(0, len(_GIVEN) - 1, n), len(_GIVEN) - 1)
    names = _SURNAME[s] + _GIVEN[g1] + _GIVEN[g2]
    stems = _SURNAME_PY[s] + _GIVEN_PY[g1] + _GIVEN_PY[g2]

    first = rng.integers(0, len(_EN_FIRST), n)
    last = rng.integers(0, len(_EN_LAST), n)
    en_names = _EN_FIRST[first] + " " + _EN_LAST[last]
    en_stems = _EN_FIRST_LOW[first] + "." + _EN_LAST_LOW[last]

    prefix = rng.integers(0, len(_COMPANY_PREFIX), n)
    company = (
        _COMPANY_PREFIX[prefix]
        + _TRADE[rng.integers(0, len(_TRADE), n)]
        + _SUFFIX[rng.integers(0, len(_SUFFIX), n)]
    )
    fleet = _COMPANY_PREFIX[prefix] + _FLEET[rng.integers(0, len(_FLEET), n)]
    en_company = _COMPANY_EN[prefix] + " " + _EN_SUFFIX[rng.integers(0, len(_EN_SUFFIX), n)]

    is_company = card > 0
    names = np.where(card == 1, company, np.where(card == 2, fleet, names))
    names = np.where(english, np.where(is_company, en_company, en_names), names)
    stems = np.where(is_company, _COMPANY_PY[prefix], np.where(english, en_stems, stems))
    return names, stems


def _emails(
    rng: np.random.Generator, ids: npt.NDArray[np.int64], stems: npt.NDArray[np.object_]
) -> tuple[list[str | None], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    n = len(ids)
    number = ids.astype(str).astype(object)
    plausible = stems + number + "@" + _DOMAIN[rng.integers(0, len(_DOMAIN), n)]
    invalid = stems + number + _INVALID[rng.integers(0, len(_INVALID), n)]
    draw = rng.random(n)
    missing = draw < NO_EMAIL_SHARE
    is_invalid = (~missing) & (draw < NO_EMAIL_SHARE + INVALID_EMAIL_SHARE)
    emails = none_where(missing, np.where(is_invalid, invalid, plausible))
    undeliverable = (~missing) & (~is_invalid) & (rng.random(n) < UNDELIVERABLE_SHARE)
    return list(emails.tolist()), ~(missing | is_invalid | undeliverable), undeliverable


def _phones(rng: np.random.Generator, n: int, card: npt.NDArray[np.int64]) -> list[str | None]:
    digits = rng.integers(0, 100_000_000, n).astype(str)
    digits = np.char.zfill(digits, 8).astype(object)
    mobile = _MOBILE[rng.integers(0, len(_MOBILE), n)] + digits
    landline = _AREA[rng.integers(0, len(_AREA), n)] + "-" + digits
    phones = np.where((card > 0) & (rng.random(n) < 0.3), landline, mobile)
    phones = none_where(rng.random(n) < NO_PHONE_SHARE, phones)
    return list(phones.tolist())


def generate_customers(
    seed: int,
    chunk: int,
    first_id: int,
    count: int,
    org: OrgPlan,
    pins: PinnedCustomers,
    timeline: Timeline,
    days: DayText,
) -> CustomerChunk:
    rng = stream(seed, "customers", chunk)
    ids = np.arange(first_id, first_id + count, dtype=np.int64)
    card = rng.choice(3, size=count, p=CARD_TYPE_SHARES).astype(np.int64)
    english = rng.random(count) < ENGLISH_SHARE
    branch_index = rng.choice(org.branch_count, size=count, p=org.branch_weight)
    am_pick = (rng.random(count) * org.am_counts[branch_index]).astype(np.int64)
    account_manager = org.am_ids[org.am_offsets[branch_index] + am_pick]

    is_new = rng.random(count) < NEW_CUSTOMER_SHARE
    old_span = timeline.window_start_ord - timeline.history_start_ord
    new_span = timeline.last_day_ord + 1 - timeline.window_start_ord
    first_card = np.where(
        is_new,
        timeline.window_start_ord + (rng.random(count) * new_span).astype(np.int64),
        timeline.history_start_ord + (rng.random(count) * old_span).astype(np.int64),
    )
    # Cards are issued in office hours: 09:00-18:00 Beijing time is 01:00-10:00 UTC.
    created_seconds = 3600 + rng.integers(0, 9 * 3600, count)

    names, stems = _names(rng, count, card, english)
    emails, has_email, undeliverable = _emails(rng, ids, stems)
    phones = _phones(rng, count, card)
    timezone = np.where(
        english & (rng.random(count) < 0.3), "Asia/Hong_Kong", "Asia/Shanghai"
    ).astype(object)

    marketing_out = rng.random(count) < MARKETING_OPT_OUT_SHARE
    survey_out = (rng.random(count) < SURVEY_OPT_OUT_SHARE) | (
        marketing_out & (rng.random(count) < 0.5)
    )
    opted_out = marketing_out | survey_out
    out_day = first_card + (rng.random(count) * (timeline.as_of_ord - first_card)).astype(np.int64)

    # Pinned customers: a class set by a person, with the reason, and when it was set.
    pin_class = np.full(count, None, dtype=object)
    pin_reason = np.full(count, None, dtype=object)
    pinned = np.isin(ids, pins.ids)
    for i in np.flatnonzero(pinned).tolist():
        found = pins.lookup(int(ids[i]))
        assert found is not None
        pin_class[i], pin_reason[i] = found
    pinned_a = pin_class == "A"
    classified = none_where(~pinned, timeline.reference_text)
    unsubscribed = none_where(~opted_out, objects(days.stamps(out_day, created_seconds)))
    nothing = [None] * count
    columns: list[list[Any]] = [
        ids.tolist(),
        [f"C{i:08d}" for i in ids.tolist()],
        names.tolist(),
        emails,
        undeliverable.tolist(),
        phones,
        _LOCALE[english.astype(np.int64)].tolist(),
        timezone.tolist(),
        _CARD[card].tolist(),
        (branch_index + 1).tolist(),
        account_manager.tolist(),
        marketing_out.tolist(),
        survey_out.tolist(),
        unsubscribed.tolist(),
        pin_class.tolist(),
        pinned.tolist(),
        pin_reason.tolist(),
        classified.tolist(),
        nothing,  # value_quadrant: computed by the classification flow
        days.days(first_card),
        days.stamps(first_card, created_seconds),
    ]
    rows = list(zip(*columns, strict=True))
    return CustomerChunk(
        ids=ids,
        branch=branch_index + 1,
        account_manager=account_manager,
        card_type=card,
        first_card=first_card,
        has_email=has_email,
        survey_opt_out=survey_out,
        pinned_a=np.asarray(pinned_a, dtype=np.bool_),
        rows=rows,
    )
