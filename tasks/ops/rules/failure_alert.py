"""Pure rules of the failure alert: what of a failed run an operator's email may show.

A run's parameters are the CRM's operational knobs (dates, switches, sizes, region codes), but a
parameter is free input from the run form, so nothing is shown that could be personal data: a
value is kept only when it is a number, a boolean, empty, an ISO date or time, or a short code
(letters, digits, ``_``, ``-``, like a 片区 code); anything else becomes ``***`` (its shape shown,
never its text). The state message is an exception's text: addresses and phone numbers in it are
masked (``crm_core.masking``) and it is cut short.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from crm_core.masking import mask_text

KIND = "ops_failure_alert"
MESSAGE_MAX_CHARS = 500
_SHOWN_ITEMS = 10
_PLAIN = re.compile(
    r"[A-Za-z0-9_\-]{1,40}"  # a code or a name of a setting
    r"|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?"  # ISO date/time
)


@dataclass(frozen=True)
class FailedRun:
    """What the alert tells of a failed flow run (read from the Prefect API)."""

    flow_run_id: UUID
    flow_name: str
    run_name: str
    deployment_name: str | None
    state_name: str  # Failed, Crashed, TimedOut ...
    state_message: str
    started_at: str | None  # ISO, in the CRM time zone
    parameters: Mapping[str, Any]
    url: str  # the run's page in the Prefect UI


def mask_value(value: Any) -> str:
    """One parameter value as the alert may show it (see the module docstring)."""
    if value is None:
        return "-"
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, str):
        return value if value == "" or _PLAIN.fullmatch(value) else "***"
    if isinstance(value, list | tuple):
        shown = [mask_value(item) for item in value[:_SHOWN_ITEMS]]
        more = f", … (+{len(value) - _SHOWN_ITEMS})" if len(value) > _SHOWN_ITEMS else ""
        return f"[{', '.join(shown)}{more}]"
    if isinstance(value, Mapping):
        return f"{{{len(value)} keys}}"
    return "***"


def masked_parameters(parameters: Mapping[str, Any]) -> list[dict[str, str]]:
    """The parameters in name order, each value masked; names are the flow's own (code)."""
    return [
        {"name": name if _PLAIN.fullmatch(name) else "***", "value": mask_value(value)}
        for name, value in sorted(parameters.items())
    ]


def short_message(message: str | None) -> str:
    text = mask_text((message or "").strip()) or "-"
    return text if len(text) <= MESSAGE_MAX_CHARS else text[: MESSAGE_MAX_CHARS - 1] + "…"


def alert_key(flow_run_id: UUID, address: str) -> str:
    """The outbox key of one operator's alert for one failed run: an automation that fires
    twice for a run (Failed, then Crashed on its way out) or a re-run queues nothing twice.
    The address is hashed: keys are shown in logs and artifacts, addresses are not."""
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]
    return f"{KIND}:{flow_run_id}:op:{digest}"


def alert_context(run: FailedRun) -> dict[str, Any]:
    """The email's template context (JSON-native, see ``tasks.mail.kinds``)."""
    return {
        "flow_name": run.flow_name,
        "run_name": run.run_name,
        "deployment_name": run.deployment_name,
        "state_name": run.state_name,
        "state_message": short_message(run.state_message),
        "started_at": run.started_at,
        "parameters": masked_parameters(run.parameters),
        "run_url": run.url,
    }
