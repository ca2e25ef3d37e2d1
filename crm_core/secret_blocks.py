"""The SMTP password and the link-signing key from Prefect Secret blocks, for flow runs on a
worker whose shell holds neither.

With ``CRM_PREFECT_SECRETS=true`` (the deployments of ``prefect.yaml`` set it) a secret that
the environment and ``.env`` leave unset is read from its Secret block on the Prefect server the
run belongs to. The value lives in the block only: it is not in the deployment's job variables
(which anyone with the UI can read) nor in a worker's environment. A variable that *is* set wins,
so a machine can still be configured by its environment alone.

    prefect block create secret    # or, in Python:
    Secret(value="...").save("crm-smtp-password")
"""

from __future__ import annotations

import os
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

# Settings field -> the name of its Secret block.
SECRET_BLOCKS = {"smtp_password": "crm-smtp-password", "secret_key": "crm-secret-key"}
ENABLE_VARIABLE = "CRM_PREFECT_SECRETS"


def prefect_secrets_enabled() -> bool:
    return os.environ.get(ENABLE_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def read_secret_block(name: str) -> str | None:
    """The value of Secret block ``name``, or None when there is no such block."""
    # Imported here: crm_core must not start Prefect for commands that never use it.
    from prefect.blocks.system import Secret

    try:
        # _sync: settings are read from sync and async code alike (async_dispatch would hand
        # an async caller a coroutine).
        block: Secret[Any] = Secret.load(name, _sync=True)  # type: ignore[call-arg, assignment]
    except ValueError:  # Prefect's "Unable to find block document named ..."
        return None
    value = block.get()
    return value if isinstance(value, str) else str(value)


class PrefectSecretSource(PydanticBaseSettingsSource):
    """A pydantic-settings source below the environment and ``.env``: only the secrets they
    leave unset are asked of Prefect, and only when ``CRM_PREFECT_SECRETS`` is on."""

    def __init__(self, settings_cls: type[BaseSettings], already_set: set[str]) -> None:
        super().__init__(settings_cls)
        self._already_set = already_set

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for all fields at once

    def __call__(self) -> dict[str, Any]:
        if not prefect_secrets_enabled():
            return {}
        values: dict[str, Any] = {}
        for field_name, block_name in SECRET_BLOCKS.items():
            if field_name in self._already_set:
                continue
            value = read_secret_block(block_name)
            if value:
                values[field_name] = value
        return values
