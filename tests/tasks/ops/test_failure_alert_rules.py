"""What a failure alert may show of a run: masked parameters and message, a stable key."""

from __future__ import annotations

from uuid import UUID

from tasks.ops.rules.failure_alert import (
    MESSAGE_MAX_CHARS,
    alert_key,
    mask_value,
    masked_parameters,
    short_message,
)

RUN = UUID("0b6f3c1e-6f7a-4d2b-9a43-1c2d3e4f5a6b")


def test_operational_values_are_shown_and_free_text_never() -> None:
    shown = masked_parameters(
        {
            "as_of": "2026-11-23",
            "dry_run": True,
            "range_size": 250000,
            "region_codes": ["EAST", "WEST"],
            "now": "2026-11-23T09:00:00+08:00",
            "note": "张三 13812345678",
            "customer": "zhang.san@example.com",
            "filters": {"name": "李四"},
        }
    )
    assert {p["name"]: p["value"] for p in shown} == {
        "as_of": "2026-11-23",
        "customer": "***",
        "dry_run": "true",
        "filters": "{1 keys}",
        "note": "***",
        "now": "2026-11-23T09:00:00+08:00",
        "range_size": "250000",
        "region_codes": "[EAST, WEST]",
    }
    assert mask_value(None) == "-" and mask_value(list(range(12))).endswith("… (+2)]")


def test_the_message_is_masked_and_cut_and_the_key_hides_the_address() -> None:
    assert short_message("relay refused zhang.san@example.com, call 13812345678") == (
        "relay refused z***@ex***, call *******5678"
    )
    assert len(short_message("x" * 2000)) == MESSAGE_MAX_CHARS and short_message(None) == "-"
    key = alert_key(RUN, " Ops@Example.test")
    assert key == alert_key(RUN, "ops@example.test") and "example" not in key
    assert key.startswith(f"ops_failure_alert:{RUN}:op:")
