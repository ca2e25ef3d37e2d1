"""``crm ops deploy`` refuses to deploy while a job variable of prefect.yaml is unset here."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crm_cli.commands.ops import unset_deploy_variables
from crm_cli.main import app

CONFIG = (Path(__file__).resolve().parents[2] / "prefect.yaml").read_text()


def test_every_job_variable_must_be_set_where_the_deploy_runs() -> None:
    missing = unset_deploy_variables(CONFIG, {})
    assert "CRM_DATABASE_URL" in missing and "CRM_OPERATOR_EMAILS" in missing
    assert "CRM_FLOWS_DIR" not in missing  # read by the worker at run time
    assert "CRM_X" not in missing  # the comments' example is not a variable
    everything = dict.fromkeys(missing, "")
    assert unset_deploy_variables(CONFIG, everything) == []


def test_the_command_names_what_is_missing_and_deploys_nothing() -> None:
    result = CliRunner().invoke(app, ["ops", "deploy"], env={"CRM_DATABASE_URL": "sqlite://"})
    assert result.exit_code == 2
    assert "CRM_OPERATOR_EMAILS" in result.output and "CRM_DATABASE_URL" not in result.output
