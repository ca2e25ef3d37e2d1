"""``notify_failure``: email the operators that a flow run failed or crashed.

Started by the automation ``crm-failure-alert`` (``tasks.ops.automations``, ``crm ops
automations``) with the failed run's id, never on a schedule. It reads the run from the Prefect
API, queues one alert per operator (``CRM_OPERATOR_EMAILS``) in the outbox - flow, deployment,
state and reason, the parameters masked (``tasks.ops.rules.failure_alert``), the run's page in
the UI - and sends them at once (``drain_outbox``), so the alert does not wait for the next
delivery run. The outbox keys (run id, hashed address) make a second firing for the same run
queue nothing. Its own failures are not alerted on: that would loop.
"""

from __future__ import annotations

from uuid import UUID

from prefect import flow

from crm_core.settings import get_settings
from crm_db.types import utcnow
from flows.deliver_outbox import drain_outbox
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.flow_run import flow_run
from tasks.ops.alerts import alert_messages, queue_alerts
from tasks.ops.failed_runs import read_failed_run

FLOW_NAME = "notify_failure"


@flow(
    name=FLOW_NAME,
    description="Email the operators that a flow run failed or crashed: flow, state, masked "
    "parameters and the run's link. Started by the crm-failure-alert automation.",
    timeout_seconds=600,
)
def notify_failure(flow_run_id: UUID, dry_run: bool = False) -> FlowSummary:
    """Alert the operators of one failed run.

    Args:
        flow_run_id: the failed flow run (the automation passes ``{{ flow_run.id }}``).
        dry_run: read the run and report whom it would alert; queue and send nothing.
    """
    settings = get_settings()
    run_date = resolve_as_of(None)
    parameters = {"flow_run_id": str(flow_run_id)}
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        failed = read_failed_run(flow_run_id, settings.tz)
        operators = settings.operator_addresses
        counts = {"operators": len(operators), "queued": 0, "already_queued": 0, "sent": 0}
        if failed.flow_name == FLOW_NAME:
            run.warn(f"run {flow_run_id} is a notify_failure run itself: not alerted (loop)")
            operators = []
        elif not operators:
            run.warn("CRM_OPERATOR_EMAILS is empty: nobody to alert of this failed run")
        if operators and not dry_run:
            messages = alert_messages(failed, operators, settings.locale, run.run_id)
            queued = queue_alerts(messages, utcnow())
            counts["queued"], counts["already_queued"] = queued.inserted, queued.existing
            counts["sent"] = drain_outbox().get("sent", 0)
        rows = [
            {
                "failed_flow": failed.flow_name,
                "deployment": failed.deployment_name,
                "state": failed.state_name,
                "run": str(failed.flow_run_id),
                **counts,
            }
        ]
        return run.finish(
            counts, rows, description=f"Failure alert for {failed.flow_name} ({failed.state_name})"
        )
