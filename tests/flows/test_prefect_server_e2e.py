"""End to end against a real Prefect server (not the test harness), as `make serve` runs it:
`prefect deploy` of this checkout's deployments, the failure-alert automation made by `crm ops
automations`, a process worker, each in its own process. One server for the module: its start
and the deploy are most of the time.

- A run of a deployment that always fails ends Failed; the automation runs notify_failure, and
  its emails arrive in the aiosmtpd sink, parameters masked, with the run's link.
- The revisits deployment run with custom parameters (as_of, dry_run, region_codes) through the
  client, as the UI's Custom run does: outcomes checked in the CRM database.
- Headless Chromium fills the real UI's Custom run form (marker ``browser`` as well).
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter
from prefect.client.schemas.objects import FlowRun as FlowRun_
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from crm_cli.main import app
from crm_db import migrate
from crm_db.enums import AbcClass, RunStatus
from crm_db.models import FlowRun, OutboxMessage, Revisit
from crm_db.session import make_engine, session_scope
from tests.crm_web.browser import launch_chromium
from tests.factories import make_customer, make_org
from tests.support.failing_flow import always_fails
from tests.support.prefect_server import ROOT, PrefectStack, prefect_stack, wait_for
from tests.support.smtp_servers import SmtpServer, running_server

pytestmark = pytest.mark.prefect_server
FAILING_ENTRYPOINT = "tests/support/failing_flow.py:always_fails"
OPERATORS = "ops-a@example.test,ops-b@example.test"


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpServer]:
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def crm_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.sqlite3'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, crm_engine: Engine, sink: SmtpServer
) -> Iterator[PrefectStack]:
    crm = {
        "CRM_MODE": "demo",
        "CRM_DATABASE_URL": crm_engine.url.render_as_string(hide_password=False),
        "CRM_SMTP_HOST": sink.host,
        "CRM_SMTP_PORT": str(sink.port),
        "CRM_SMTP_TLS": "none",
        "CRM_SMTP_USER": "",
        "CRM_MAIL_FROM": "西湖能源 <crm@example.test>",
        "CRM_COMPANY_NAME": "西湖能源",
        "CRM_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        "CRM_OPERATOR_EMAILS": OPERATORS,
    }
    tmp: Path = tmp_path_factory.mktemp("prefect")
    with prefect_stack(tmp, crm) as started:
        # The real `prefect deploy` of prefect.yaml (job variables filled from this env).
        started.cli("--no-prompt", "deploy", "--name", "notify-failure", "--name", "revisits-daily")
        with temporary_settings(updates={PREFECT_API_URL: started.api_url}):
            # A test-only flow, not in prefect.yaml: registered through the Python API.
            # from_source: the worker runs it from this checkout, as prefect.yaml's pull step does.
            source = always_fails.from_source(source=str(ROOT), entrypoint=FAILING_ENTRYPOINT)
            source.to_deployment(name="always-fails", work_pool_name="crm").apply()
        started.start_worker()
        yield started


def _api(stack: PrefectStack) -> AbstractContextManager[object]:
    return temporary_settings(updates={PREFECT_API_URL: stack.api_url})


def _received(sink: SmtpServer) -> list[Message]:
    return [
        email.message_from_bytes(item.data or b"", policy=default_policy)
        for item in sink.sink.received
    ]


def test_a_failed_run_emails_the_operators_through_the_automation(
    stack: PrefectStack, sink: SmtpServer, crm_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real command, in this process (a subprocess would add its start-up time).
    monkeypatch.setenv("PREFECT_API_URL", stack.api_url)
    made = CliRunner().invoke(app, ["ops", "automations"])
    assert made.exit_code == 0 and "crm-failure-alert created" in made.output, made.output

    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        failed = run_deployment(
            "always_fails/always-fails",
            parameters={"as_of": "2026-11-23", "note": "李四 13812345678"},
            timeout=0,
        )

        def alerted() -> list[Message] | None:
            messages = _received(sink)
            return messages if len(messages) >= 2 else None

        messages = wait_for(alerted, 150, "the alert emails", stack=stack)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(failed.id).state
            assert state is not None and state.is_failed()
            notify = client.read_deployment_by_name("notify_failure/notify-failure")
            runs = client.read_flow_runs()
        notify_runs = [r for r in runs if r.deployment_id == notify.id]
        # One alert run for the failed run (its own completion alerts nobody).
        assert [r.parameters["flow_run_id"] for r in notify_runs] == [str(failed.id)]

    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == OPERATORS.split(",")
    alert = messages[0]
    assert "【运行失败】always_fails（Failed）" in alert["Subject"]
    text = alert.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert f"{stack.ui_url}/runs/flow-run/{failed.id}" in text
    assert "as_of = 2026-11-23" in text
    assert "note = ***" in text  # a free-text parameter is never shown
    assert "李四" not in text and "13812345678" not in text
    assert "deliberate failure" in text and "zhang.san@example.com" not in text
    assert "z***@ex***" in text  # the address in the error, masked
    with session_scope(crm_engine) as session:
        keys = session.scalars(select(OutboxMessage.idempotency_key)).all()
    assert len(keys) == 2 and all(k.startswith(f"ops_failure_alert:{failed.id}:op:") for k in keys)


def _seed_due_customers(engine: Engine) -> int:
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        for _ in range(3):
            make_customer(
                session, org, abc_class=AbcClass.A, abc_pinned=True, abc_pinned_reason="e2e"
            )
    return 3


def test_the_revisits_deployment_runs_on_the_worker_with_custom_parameters(
    stack: PrefectStack, crm_engine: Engine
) -> None:
    """What the UI's Custom run does: a run of the deployment with parameters of our choosing,
    picked up by the worker from the pool, its settings from the deployment's job variables."""
    due = _seed_due_customers(crm_engine)
    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        dry = run_deployment(
            "revisits/revisits-daily",
            parameters={"as_of": "2026-11-24", "dry_run": True},
            timeout=240,
        )
        assert dry.state is not None and dry.state.is_completed(), stack.log("worker")
        with session_scope(crm_engine) as session:
            assert session.scalar(select(func.count()).select_from(Revisit)) == 0

        real = run_deployment(
            "revisits/revisits-daily",
            parameters={"as_of": "2026-11-24", "dry_run": False, "region_codes": ["EAST"]},
            timeout=240,
        )
        assert real.state is not None and real.state.is_completed(), stack.log("worker")
        with get_client(sync_client=True) as client:
            keys = {a.key for a in client.read_artifacts() if a.flow_run_id == real.id}
    assert "revisits-summary" in keys
    with session_scope(crm_engine) as session:
        assert session.scalar(select(func.count()).select_from(Revisit)) == due
        ledger = session.scalars(
            select(FlowRun).where(FlowRun.flow_name == "revisits").order_by(FlowRun.id)
        ).all()
    # The dry run writes no ledger row; the real one names its Prefect run and as-of date.
    assert [(r.as_of, r.status, r.prefect_flow_run_id) for r in ledger] == [
        (date(2026, 11, 24), RunStatus.COMPLETED, str(real.id))
    ]


@pytest.mark.browser
def test_an_operator_starts_a_custom_run_in_the_prefect_ui(
    stack: PrefectStack, crm_engine: Engine
) -> None:
    """Headless Chromium drives the real UI: the revisits deployment's Custom run form, as-of
    date and dry run set, Submit; the run completes and its summary artifact is on its page."""
    with _api(stack), get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name("revisits/revisits-daily").id

    def submitted() -> FlowRun_ | None:
        """The run the form created (the UI goes to the deployment's runs, not to the run)."""
        with _api(stack), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id={"any_": [deployment_id]})
            )
        return next((r for r in runs if r.parameters.get("as_of") == "2026-11-25"), None)

    for browser in launch_chromium():
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{stack.ui_url}/deployments/deployment/{deployment_id}/run")
        page.get_by_text("as_of (Optional)").wait_for(timeout=60_000)
        page.locator("button", has_text=re.compile(r"^\s*date\s*$")).first.click()
        page.get_by_text("Select date").first.click()
        page.locator("input[type=date]").fill("2026-11-25")
        page.get_by_role("button", name="Apply").click()
        page.get_by_role("switch").first.click()  # dry_run on
        page.get_by_role("button", name="Submit").click()
        # The UI creates the run through the API, then goes to the deployment's runs: under a
        # loaded CI machine that answer can take longer than a page wait, so the test waits for
        # the run itself (what Submit must have done) and only then for the UI's navigation.
        run = wait_for(submitted, 120, "the run submitted from the UI", stack=stack)
        page.wait_for_url(re.compile(r"tab=Runs"), timeout=60_000)
        assert run.parameters["dry_run"] is True
        page.goto(f"{stack.ui_url}/runs/flow-run/{run.id}")
        page.get_by_text("Completed").first.wait_for(timeout=180_000)
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text("revisits-summary").first.wait_for(timeout=30_000)
    with session_scope(crm_engine) as session:  # a dry run: no ledger row for that day
        days = set(session.scalars(select(FlowRun.as_of).where(FlowRun.flow_name == "revisits")))
    assert date(2026, 11, 25) not in days
