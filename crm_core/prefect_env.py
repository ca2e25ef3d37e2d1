"""Prefect environment defaults for running offline, with state under ``var/``.

Must run before ``prefect`` is imported (Prefect reads its settings at import). Values already in
the environment win, so an operator can point ``PREFECT_API_URL`` at a real Prefect server.
"""

from __future__ import annotations

import os

from crm_core.paths import var_dir

OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_UI_ENABLED": "true",
    # The UI would otherwise show upgrade prompts and marketing banners meant for an online install.
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    # The ephemeral API (no `crm server start`) took up to 19 s to start on a busy 2-core
    # machine; Prefect's default of 20 s would make `crm run` fail there for no real reason.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # Our own notices (e.g. the demo signing key) go to the console and to the run's logs.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "crm",
    # ... and outside a run (e.g. `crm web`) they stay on the console: without this, Prefect's
    # API handler adds a warning of its own to each such line.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def configure_prefect_env() -> None:
    os.environ.setdefault("PREFECT_HOME", str(var_dir() / "prefect"))
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
