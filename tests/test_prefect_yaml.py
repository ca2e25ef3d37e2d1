"""prefect.yaml: every deployment is complete for an operator (schedule in the business time
zone, description, tags, one run at a time) and its parameters are valid for its flow."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}
# Started by an automation on a failed run, never by the clock.
UNSCHEDULED = {"notify-failure", "revisits-range"}
# Fan-out children (started by their parent with run_deployment): a parent's children must run
# side by side on any worker, so they have no concurrency limit.
FAN_OUT_CHILDREN = {"revisits-range"}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_is_complete_and_its_parameters_fit_its_flow(name: str) -> None:
    deployment = DEPLOYMENTS[name]

    assert len(deployment["description"]) > 80 and deployment["tags"][0] == "crm"
    if name in FAN_OUT_CHILDREN:
        assert "concurrency_limit" not in deployment
    else:
        assert deployment["concurrency_limit"]["limit"] >= 1
    if name not in UNSCHEDULED:
        assert deployment["schedules"], name
        for schedule in deployment["schedules"]:
            assert schedule["timezone"] == "Asia/Shanghai"
            assert len(schedule["cron"].split()) == 5
    env = deployment["work_pool"]["job_variables"]["env"]
    assert {"CRM_DATABASE_URL", "CRM_SMTP_HOST", "CRM_PREFECT_SECRETS"} <= env.keys()
    # No secret is a job variable (they are in Secret blocks, crm_core.secret_blocks).
    assert not {"CRM_SMTP_PASSWORD", "CRM_SECRET_KEY"} & env.keys()
    for variable, value in env.items():
        templated = re.fullmatch(r"\{\{ \$(CRM_\w+) \}\}", str(value))
        assert templated is None or templated.group(1) == variable
    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    parameters = dict(deployment.get("parameters") or {})
    if name == "notify-failure":  # the automation passes the failed run's id
        parameters["flow_run_id"] = "0b6f3c1e-6f7a-4d2b-9a43-1c2d3e4f5a6b"
    if name in FAN_OUT_CHILDREN:  # the parent passes its date, instant and the id span
        parameters |= {"as_of": "2026-11-23", "now": "2026-11-23T01:00:00Z", "lo": 1, "hi": 9}
    flow.validate_parameters(parameters)  # raises on a wrong type or a missing parameter
