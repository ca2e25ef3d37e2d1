"""Intake, pure: the reference number, which notices a new complaint gets, their idempotency
keys, the promised reply time as the customer reads it, and the lifecycle an imported row
describes (explicit event times, never the import's).

- **Receipt** (customer, transactional): a complaint that is still ``new`` when it is recorded
  and whose first-response due time lies ahead gets one receipt naming its reference number,
  its owner and the promised reply time (the first-response due time in the branch's time
  zone). A complaint imported already acknowledged or later, or one whose due time has passed
  (a back-dated intake), gets none: its promise could not be kept or was already met.
- **Intake alert** (senior management, 高层管理人员亲自受理): a complaint whose SLA policy says
  ``notify_executive_at_intake`` (critical ones, A-class customers' high ones) reaches every
  active executive, unless it is already resolved when recorded (an import of history).
Keys: ``complaint_receipt:<reference>`` and ``complaint_intake_alert:<reference>:staff:<id>``,
so re-running an intake, or re-importing its file, queues nothing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from crm_db.enums import ComplaintStatus
from tasks.complaints.rules.lifecycle import Transition

RECEIPT_KIND = "complaint_receipt"
ALERT_KIND = "complaint_intake_alert"
_DONE = frozenset({ComplaintStatus.RESOLVED, ComplaintStatus.VERIFIED, ComplaintStatus.CLOSED})
REFERENCE_PREFIX = "CP"
_REFERENCE = re.compile(r"CP(\d{4})(\d{7})")


def receipt_due(
    status: ComplaintStatus, first_response_due_at: datetime | None, now: datetime
) -> bool:
    """Whether a receipt goes to the customer of a complaint recorded at ``now``."""
    return (
        status is ComplaintStatus.NEW
        and first_response_due_at is not None
        and first_response_due_at > now
    )


def alert_due(status: ComplaintStatus, notify_executive_at_intake: bool) -> bool:
    """Whether senior management hears of a complaint recorded now."""
    return notify_executive_at_intake and status not in _DONE


def receipt_key(reference: str) -> str:
    return f"{RECEIPT_KIND}:{reference}"


def alert_key(reference: str, staff_id: int) -> str:
    return f"{ALERT_KIND}:{reference}:staff:{staff_id}"


def local_time(instant: datetime, zone: str) -> str:
    """``2026-12-08 10:00 (UTC+08:00)``: what a reader in ``zone`` sees on the clock."""
    local = instant.astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def next_reference(year: int, last: str | None) -> str:
    """``CP2026`` + a 7-digit number, one more than ``last`` (the year's highest so far)."""
    match = _REFERENCE.fullmatch(last or "")
    number = int(match.group(2)) + 1 if match and int(match.group(1)) == year else 1
    return f"{REFERENCE_PREFIX}{year:04d}{number:07d}"


@dataclass(frozen=True)
class Stamps:
    """The lifecycle times an imported row gives (UTC), besides ``received_at``."""

    acknowledged_at: datetime | None = None
    waiting_since: datetime | None = None
    resolved_at: datetime | None = None
    verified_at: datetime | None = None
    closed_at: datetime | None = None


class StampError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


S = ComplaintStatus
# Which times each status needs (in lifecycle order) and the events they become.
_NEEDS: dict[ComplaintStatus, tuple[str, ...]] = {
    S.NEW: (),
    S.ACKNOWLEDGED: ("acknowledged_at",),
    S.IN_PROGRESS: ("acknowledged_at",),
    S.WAITING_ON_CUSTOMER: ("acknowledged_at", "waiting_since"),
    S.RESOLVED: ("acknowledged_at", "resolved_at"),
    S.VERIFIED: ("acknowledged_at", "resolved_at", "verified_at"),
    S.CLOSED: ("acknowledged_at", "resolved_at", "verified_at", "closed_at"),
}
STAMP_FIELDS = ("acknowledged_at", "waiting_since", "resolved_at", "verified_at", "closed_at")


def import_transitions(
    status: ComplaintStatus, received_at: datetime, stamps: Stamps
) -> list[tuple[Transition, datetime]]:
    """The events after intake that take an imported complaint to ``status`` at the times the
    row gives: ``acknowledged_at`` is the first response (``ack``; for ``in_progress`` the
    ``start``), then ``wait`` at ``waiting_since``, ``resolve``, ``verify``, ``close``. Each
    status needs exactly its times, strictly after the one before; ``StampError`` names the
    first field that is missing, extra or out of order."""
    needed = _NEEDS[status]
    for name in STAMP_FIELDS:
        given = getattr(stamps, name) is not None
        if name in needed and not given:
            raise StampError(name, f"required when status is {status.value}")
        if name not in needed and given:
            raise StampError(name, f"must be empty when status is {status.value}")
    events: list[tuple[Transition, datetime]] = []
    for name in needed:
        at = getattr(stamps, name)
        transition = {
            "acknowledged_at": Transition.START if status is S.IN_PROGRESS else Transition.ACK,
            "waiting_since": Transition.WAIT,
            "resolved_at": Transition.RESOLVE,
            "verified_at": Transition.VERIFY,
            "closed_at": Transition.CLOSE,
        }[name]
        previous = events[-1][1] if events else received_at
        if at <= previous:
            before = "received_at" if not events else needed[len(events) - 1]
            raise StampError(name, f"must be after {before}")
        events.append((transition, at))
    return events


__all__ = [
    "ALERT_KIND",
    "RECEIPT_KIND",
    "STAMP_FIELDS",
    "StampError",
    "Stamps",
    "alert_due",
    "alert_key",
    "import_transitions",
    "local_time",
    "next_reference",
    "receipt_due",
    "receipt_key",
]
