"""Whether ``crm`` shows tracebacks: ``crm --debug ...`` or ``CRM_DEBUG=1`` (the option sets the
variable, so the flows a command runs in this process see it too)."""

from __future__ import annotations

import os

DEBUG_ENV = "CRM_DEBUG"


def enable_debugging() -> None:
    os.environ[DEBUG_ENV] = "1"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
