"""The delivery timeouts and the lease: checked when settings load, with one clear line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm_core.settings import Settings


def test_defaults_wait_ten_minutes_for_the_data_reply_within_the_lease() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.smtp_data_timeout_s == 600
    assert settings.outbox_lease_s >= settings.smtp_timeout_s + settings.smtp_data_timeout_s + 2


def test_a_lease_shorter_than_one_send_is_refused_naming_the_settings() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(  # type: ignore[call-arg]
            _env_file=None, smtp_timeout_s=30, smtp_data_timeout_s=600, outbox_lease_s=600
        )
    text = str(caught.value)
    for name in ("CRM_OUTBOX_LEASE_S", "CRM_SMTP_TIMEOUT_S", "CRM_SMTP_DATA_TIMEOUT_S", "632"):
        assert name in text
