"""Every flow ``crm run`` can start, by name. Each new flow module adds one line here.

Every flow here follows ``flows.run_contract``: parameters ``as_of`` and ``dry_run``, returns a
``FlowSummary``.
"""

from __future__ import annotations

from prefect import Flow

from flows.churn_warning import churn_warning
from flows.classify_customers import classify_customers
from flows.complaint_checks import complaint_checks
from flows.complaint_feedback_report import complaint_feedback_report
from flows.deliver_outbox import deliver_outbox
from flows.healthcheck import healthcheck
from flows.revisits import revisits
from flows.run_contract import FlowSummary
from flows.survey_report import survey_report
from flows.surveys import surveys
from flows.target_reconciliation import target_reconciliation
from flows.weekly_form_rollup import weekly_form_rollup

# Keyed by the Prefect flow name, so `crm run NAME` and the Prefect UI use the same names.
FLOWS: dict[str, Flow[..., FlowSummary]] = {
    flow.name: flow
    for flow in (
        churn_warning,
        classify_customers,
        complaint_checks,
        complaint_feedback_report,
        deliver_outbox,
        healthcheck,
        revisits,
        survey_report,
        surveys,
        target_reconciliation,
        weekly_form_rollup,
    )
}


def known_flows() -> list[str]:
    return sorted(FLOWS)
