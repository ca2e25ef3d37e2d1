"""Reading a failed flow run from the Prefect API, for the failure alert."""

from __future__ import annotations

from uuid import UUID
from zoneinfo import ZoneInfo

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

from tasks.ops.rules.failure_alert import FailedRun


def run_url(flow_run_id: UUID) -> str:
    """The run's page in the Prefect UI (``PREFECT_UI_URL``, else the API URL without /api)."""
    settings = get_current_settings()
    base = settings.ui_url or (settings.api.url or "").removesuffix("/api")
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"


def read_failed_run(flow_run_id: UUID, tz: ZoneInfo) -> FailedRun:
    """The run, its flow and deployment names and its final state (ObjectNotFound if unknown)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        flow = client.read_flow(run.flow_id)
        deployment = client.read_deployment(run.deployment_id) if run.deployment_id else None
    state = run.state
    started = run.start_time or run.expected_start_time
    return FailedRun(
        flow_run_id=run.id,
        flow_name=flow.name,
        run_name=run.name,
        deployment_name=deployment.name if deployment is not None else None,
        state_name=state.name if state is not None and state.name else "Failed",
        state_message=(state.message or "") if state is not None else "",
        started_at=started.astimezone(tz).isoformat(timespec="seconds") if started else None,
        parameters=run.parameters,
        url=run_url(run.id),
    )
