from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_db.enums import ComplaintStatus
from tasks.complaints.rules.intake import (
    StampError,
    Stamps,
    alert_due,
    alert_key,
    import_transitions,
    local_time,
    next_reference,
    receipt_due,
    receipt_key,
)
from tasks.complaints.rules.lifecycle import Transition

S = ComplaintStatus
T = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
H = timedelta(hours=1)


def test_receipt_only_for_a_new_complaint_whose_promise_lies_ahead() -> None:
    assert receipt_due(S.NEW, T + H, T)
    assert not receipt_due(S.NEW, T, T)  # due now: already past by the time it arrives
    assert not receipt_due(S.ACKNOWLEDGED, T + H, T)
    assert not receipt_due(S.NEW, None, T)


@pytest.mark.parametrize("status", list(S))
def test_alert_for_flagged_complaints_not_yet_resolved(status: ComplaintStatus) -> None:
    done = status in (S.RESOLVED, S.VERIFIED, S.CLOSED)
    assert alert_due(status, True) is (not done)
    assert alert_due(status, False) is False


def test_keys_are_per_complaint_and_recipient() -> None:
    assert receipt_key("CP20260000001") == "complaint_receipt:CP20260000001"
    assert alert_key("CP20260000001", 7) == "complaint_intake_alert:CP20260000001:staff:7"
    assert alert_key("CP20260000001", 7) != alert_key("CP20260000001", 8)


def test_local_time_names_the_offset() -> None:
    assert local_time(T, "Asia/Shanghai") == "2026-03-01 09:30 (UTC+08:00)"
    assert local_time(T, "America/New_York") == "2026-02-28 20:30 (UTC-05:00)"


def test_next_reference_counts_per_year() -> None:
    assert next_reference(2026, None) == "CP20260000001"
    assert next_reference(2026, "CP20260000041") == "CP20260000042"
    assert next_reference(2027, "CP20260000041") == "CP20270000001"
    assert next_reference(2026, "K1") == "CP20260000001"


def test_import_transitions_follow_the_row_times() -> None:
    closed = Stamps(T + H, None, T + 2 * H, T + 3 * H, T + 4 * H)
    assert import_transitions(S.CLOSED, T, closed) == [
        (Transition.ACK, T + H),
        (Transition.RESOLVE, T + 2 * H),
        (Transition.VERIFY, T + 3 * H),
        (Transition.CLOSE, T + 4 * H),
    ]
    assert import_transitions(S.IN_PROGRESS, T, Stamps(T + H)) == [(Transition.START, T + H)]
    assert import_transitions(S.WAITING_ON_CUSTOMER, T, Stamps(T + H, T + 2 * H)) == [
        (Transition.ACK, T + H),
        (Transition.WAIT, T + 2 * H),
    ]
    assert import_transitions(S.NEW, T, Stamps()) == []


@pytest.mark.parametrize(
    ("status", "stamps", "field", "problem"),
    [
        (S.RESOLVED, Stamps(T + H), "resolved_at", "required when status is resolved"),
        (S.NEW, Stamps(T + H), "acknowledged_at", "must be empty when status is new"),
        (S.ACKNOWLEDGED, Stamps(T), "acknowledged_at", "must be after received_at"),
        (
            S.VERIFIED,
            Stamps(T + H, None, T + 3 * H, T + 2 * H),
            "verified_at",
            "must be after resolved_at",
        ),
    ],
)
def test_import_transitions_name_the_field(
    status: ComplaintStatus, stamps: Stamps, field: str, problem: str
) -> None:
    with pytest.raises(StampError) as caught:
        import_transitions(status, T, stamps)
    assert (caught.value.field, caught.value.problem) == (field, problem)
