"""A flow that always fails, deployed by the failure-alert test (``tests/flows/
test_failure_alert_server.py``) to see the automation and ``notify_failure`` answer it."""

from __future__ import annotations

from datetime import date

from prefect import flow


@flow(name="always_fails")
def always_fails(as_of: date | None = None, dry_run: bool = False, note: str = "") -> None:
    # The message quotes an address, as a real error may: the alert must mask it.
    raise RuntimeError("deliberate failure; the relay refused zhang.san@example.com")
