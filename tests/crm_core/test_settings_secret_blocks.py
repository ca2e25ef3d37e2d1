"""CRM_PREFECT_SECRETS: the SMTP password and signing key come from Prefect Secret blocks when
the environment leaves them unset (the environment wins); an unresolved deployment template in
a variable is an error naming it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from prefect.blocks.system import Secret
from pydantic import ValidationError

from crm_core.settings import Settings
from crm_core.settings_errors import describe_settings_error


@pytest.fixture
def blocks(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in ("CRM_SMTP_PASSWORD", "CRM_SECRET_KEY", "CRM_PREFECT_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    values = {"crm-smtp-password": f"pw-{uuid.uuid4().hex}", "crm-secret-key": uuid.uuid4().hex * 2}
    for name, value in values.items():
        Secret(value=value).save(name, overwrite=True)
    yield values
    for name in values:
        Secret.delete(name)


def test_secrets_come_from_blocks_only_when_enabled_and_unset(
    blocks: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(_env_file=None).secret_key is None

    monkeypatch.setenv("CRM_PREFECT_SECRETS", "true")
    from_blocks = Settings(_env_file=None)
    assert from_blocks.smtp_password is not None and from_blocks.secret_key is not None
    assert from_blocks.smtp_password.get_secret_value() == blocks["crm-smtp-password"]
    assert from_blocks.signing_key() == blocks["crm-secret-key"].encode()
    assert blocks["crm-smtp-password"] not in repr(from_blocks)

    monkeypatch.setenv("CRM_SECRET_KEY", "k" * 40)  # the machine's own setting wins
    mixed = Settings(_env_file=None)
    assert mixed.signing_key() == b"k" * 40
    assert mixed.smtp_password is not None
    assert mixed.smtp_password.get_secret_value() == blocks["crm-smtp-password"]

    # Production's rule (a real key) is checked against the block's key.
    monkeypatch.setenv("CRM_MODE", "production")
    monkeypatch.setenv("CRM_SMTP_TLS", "starttls")
    monkeypatch.delenv("CRM_SECRET_KEY")
    production = Settings(_env_file=None)
    assert production.signing_key() == blocks["crm-secret-key"].encode()


def test_an_unresolved_deployment_template_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_SMTP_PORT", "{{ $CRM_SMTP_PORT }}")
    monkeypatch.setenv("CRM_SMTP_USER", "")  # an unused variable of a deployment: unset

    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)

    lines = describe_settings_error(raised.value)
    assert len(lines) == 1 and lines[0].startswith("CRM_SMTP_PORT: holds an unresolved")
    assert "prefect deploy" in lines[0]
    monkeypatch.setenv("CRM_SMTP_PORT", "2525")
    assert Settings(_env_file=None).smtp_user is None
