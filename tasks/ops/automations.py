"""The automation that alerts the operators: a flow run entering Failed or Crashed runs the
``notify_failure`` deployment with that run's id.

Prefect's own automations (the server's event triggers), not a poller of ours: the server sees
every state change, of every worker's runs. Created or updated by name, so ``crm ops
automations`` (and ``crm ops deploy``) can be run again after every deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

AUTOMATION_NAME = "crm-failure-alert"
NOTIFY_DEPLOYMENT = "notify_failure/notify-failure"
FAILED_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"})


@dataclass(frozen=True)
class AutomationResult:
    automation_id: UUID
    created: bool  # False: an existing automation of that name was updated


def failure_alert_automation(notify_deployment_id: UUID) -> AutomationCore:
    return AutomationCore(
        name=AUTOMATION_NAME,
        description="A CRM flow run failed or crashed: run notify_failure, which emails the "
        "operators (CRM_OPERATOR_EMAILS) the flow, its masked parameters and the run's link.",
        tags=["crm", "ops"],
        trigger=EventTrigger(
            expect=set(FAILED_EVENTS),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            # Each failed run on its own, at once.
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=notify_deployment_id,
                # Rendered by the server from the triggering event's flow run. A plain "jinja"
                # template (rendered as text): the bare "{{ flow_run.id }}" is rendered through
                # tojson, which cannot serialise a UUID.
                parameters={
                    "flow_run_id": {"__prefect_kind": "jinja", "template": "{{ flow_run.id }}"}
                },
            )
        ],
    )


def ensure_failure_alert_automation() -> AutomationResult:
    """Create the automation, or update the one of that name (LookupError when the
    ``notify-failure`` deployment is not on the server yet: deploy first)."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(NOTIFY_DEPLOYMENT)
        except ObjectNotFound:
            raise LookupError(
                f"deployment {NOTIFY_DEPLOYMENT} is not on the Prefect server: run "
                "`prefect deploy --all` (or `crm ops deploy`) first"
            ) from None
        automation = failure_alert_automation(deployment.id)
        existing = client.read_automations_by_name(AUTOMATION_NAME)
        if existing:
            client.update_automation(existing[0].id, automation)
            for duplicate in existing[1:]:  # an older install's second copy would alert twice
                client.delete_automation(duplicate.id)
            return AutomationResult(existing[0].id, created=False)
        return AutomationResult(client.create_automation(automation), created=True)
