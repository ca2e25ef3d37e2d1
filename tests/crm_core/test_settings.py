"""Settings: defaults work on a bare machine; production refuses unsafe values; secrets stay secret;
``.env.example`` documents every setting."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from crm_core import settings as settings_module
from crm_core.paths import PROJECT_ROOT
from crm_core.settings import Settings


def test_demo_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CRM_VAR_DIR", str(tmp_path))
    monkeypatch.setattr(settings_module, "_demo_key_noticed", False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    with caplog.at_level(logging.WARNING, logger="crm"):
        key = settings.signing_key()
        assert settings.signing_key() == key  # the same key, and no second notice
        Settings(_env_file=None).signing_key()  # type: ignore[call-arg]
    notices = [r for r in caplog.records if "demo key" in r.getMessage()]
    assert len(notices) == 1 and notices[0].name == "crm"
    assert len(key) >= 32 and (tmp_path / "demo-secret-key").exists()


def test_production_requires_secret_and_tls() -> None:
    with pytest.raises(ValidationError, match="CRM_SECRET_KEY"):
        Settings(_env_file=None, mode="production")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="plaintext"):
        Settings(_env_file=None, mode="production", secret_key="k" * 40, smtp_tls="none")  # type: ignore[call-arg]
    ok = Settings(_env_file=None, mode="production", secret_key="k" * 40)  # type: ignore[call-arg]
    assert ok.signing_key() == b"k" * 40


def test_secrets_never_show() -> None:
    settings = Settings(_env_file=None, smtp_password="hunter2-secret", secret_key="s" * 40)  # type: ignore[call-arg]
    assert "hunter2-secret" not in repr(settings) and "s" * 40 not in str(settings)
    summary = settings.safe_summary()
    assert "hunter2" not in str(summary) and summary["secret_key"] == "set"


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown timezone"):
        Settings(_env_file=None, timezone="Mars/Olympus")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="public_base_url"):
        Settings(_env_file=None, public_base_url="javascript:alert(1)")  # type: ignore[call-arg]


def test_env_example_lists_every_setting() -> None:
    documented = set(re.findall(r"CRM_([A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text()))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields <= documented, f"missing from .env.example: {sorted(fields - documented)}"
