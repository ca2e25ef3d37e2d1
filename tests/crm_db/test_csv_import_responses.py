"""``crm import responses``: phone and paper answers recorded through the answer page's own
path, at their own time, on SQLite and PostgreSQL; every bad row named ``FILE:LINE: field:
problem``; all or nothing; a re-import records nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.csv_import import ImportOptions, ImportResult, import_csv
from crm_db.csv_import.kinds import KINDS
from crm_db.enums import InvitationStatus, ResponseSource, SurveyKind
from crm_db.models import Staff, SurveyResponse
from crm_db.session import make_engine, session_scope
from tasks.surveys.answers import Outcome, record_link_answer
from tasks.surveys.rules.answers import Answer
from tests.crm_db.csv_factories import write_csv
from tests.tasks.surveys.answer_factories import invitation_status, make_invitation, responses

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
HEADER = list(KINDS["responses"].column_names)


def run_import(engine: Engine, path: Path) -> tuple[ImportResult, list[str]]:
    errors: list[str] = []
    options = ImportOptions(now=NOW, default_timezone="Asia/Shanghai", default_locale="zh-CN")
    result = import_csv(
        engine, "responses", path, options, lambda e: errors.append(e.format(path.name))
    )
    return result, errors


def row(**cells: str) -> dict[str, str]:
    return {"score": "9", "responded_at": "2026-11-22T10:00:00+08:00", **cells}


def staff_id(engine: Engine, external_id: str) -> int:
    with session_scope(engine) as session:
        return session.execute(
            select(Staff.id).where(Staff.external_id == external_id)
        ).scalar_one()


def test_phone_and_paper_answers_are_recorded_at_their_own_time(
    engine: Engine, tmp_path: Path
) -> None:
    nps = make_invitation(engine, now=NOW)
    csat = make_invitation(engine, now=NOW, kind=SurveyKind.CSAT, status=InvitationStatus.EXPIRED)
    path = write_csv(
        tmp_path / "responses.csv",
        HEADER,
        [
            row(
                invitation=str(nps.invitation_id),
                score="10",
                product_rating="5",
                suggestion="  多开几个\r\n洗车点  ",
                source="phone",
                recorded_by=nps.account_manager_external_id,
            ),
            # By customer and campaign; naive time read in Asia/Shanghai; the flow expired the
            # invitation since, but the answer was given while it was open.
            row(
                customer_id=csat.customer_external_id,
                campaign=csat.campaign_code,
                score="2",
                service_rating="1",
                responded_at="2026-11-22 18:30",
                source="",
            ),
        ],
    )
    result, errors = run_import(engine, path)
    assert errors == [] and result.written
    assert (result.counts.inserted, result.counts.unchanged) == (2, 0)
    with session_scope(engine) as session:
        stored = {r.invitation_id: r for r in session.scalars(select(SurveyResponse))}
        first, second = stored[nps.invitation_id], stored[csat.invitation_id]
        assert (first.score, first.product_rating, first.service_rating) == (10, 5, None)
        assert first.comment == "多开几个\n洗车点"
        assert first.source is ResponseSource.PHONE
        assert first.recorded_by_id == staff_id(engine, nps.account_manager_external_id)
        assert first.responded_at == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
        assert first.recorded_at == NOW  # the import's clock, apart from the answer's
        assert (second.score, second.service_rating, second.source) == (
            2,
            1,
            ResponseSource.IMPORT,
        )
        assert second.responded_at == datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    for invitation in (nps, csat):
        assert invitation_status(engine, invitation.invitation_id) is InvitationStatus.RESPONDED
    # The same file again: nothing new.
    again, errors = run_import(engine, path)
    assert errors == [] and (again.counts.inserted, again.counts.unchanged) == (0, 2)
    assert responses(engine) == 2
    # The link of an answered invitation no longer takes another answer.
    assert record_link_answer(engine, nps.invitation_id, Answer(3), now=NOW).outcome is (
        Outcome.REFUSED
    )


def test_rows_are_checked_on_their_own_first(engine: Engine, tmp_path: Path) -> None:
    good = make_invitation(engine, now=NOW)
    future = (NOW + timedelta(hours=1)).isoformat()
    path = write_csv(
        tmp_path / "bad.csv",
        HEADER,
        [
            row(invitation=str(good.invitation_id), score="abc", product_rating="6"),
            row(),  # neither the invitation nor customer and campaign
            row(invitation="5", customer_id=good.customer_external_id),
            row(customer_id="NOPE", campaign="x"),
            row(invitation=str(good.invitation_id), responded_at=future, source="web"),
            row(invitation="7", recorded_by="S-NOPE", suggestion="好" * 2001),
        ],
    )
    result, errors = run_import(engine, path)
    name = path.name
    assert errors == [
        f"{name}:2: score: not a whole number from 0 to 10",
        f"{name}:2: product_rating: must be from 1 to 5",
        f"{name}:3: customer_id: required when invitation is empty (with campaign)",
        f"{name}:3: campaign: required when invitation is empty (with customer_id)",
        f"{name}:4: invitation: give the invitation or customer_id and campaign, not both",
        f"{name}:5: customer_id: unknown customer external id",
        f"{name}:6: responded_at: in the future (more than 5 minutes after the import started)",
        f"{name}:6: source: must be phone, paper or import (web answers come from the page)",
        f"{name}:6: invitation: duplicate invitation (first on line 2)",
        f"{name}:7: suggestion: longer than 2000 characters",
        f"{name}:7: recorded_by: unknown staff external id",
    ]
    assert not result.written and responses(engine) == 0


def test_rows_the_invitations_refuse_roll_back_the_whole_file(
    engine: Engine, tmp_path: Path
) -> None:
    fine = make_invitation(engine, now=NOW)
    csat = make_invitation(engine, now=NOW, kind=SurveyKind.CSAT)
    answered = make_invitation(engine, now=NOW)
    assert record_link_answer(engine, answered.invitation_id, Answer(8), now=NOW).outcome is (
        Outcome.RECORDED
    )
    short = make_invitation(engine, now=NOW, valid_for=timedelta(days=-1, hours=-3))
    other = make_invitation(engine, now=NOW)
    path = write_csv(
        tmp_path / "refused.csv",
        HEADER,
        [
            row(invitation=str(fine.invitation_id)),  # fine on its own: not written either
            row(invitation=str(csat.invitation_id), score="9"),
            row(invitation=str(answered.invitation_id), score="3"),
            row(invitation=str(short.invitation_id)),  # answered after it expired
            row(invitation="999999"),
            row(customer_id=other.customer_external_id, campaign=fine.campaign_code),
            row(customer_id=other.customer_external_id, campaign="nps:none"),
            row(customer_id=fine.customer_external_id, campaign=fine.campaign_code),
        ],
    )
    result, errors = run_import(engine, path)
    name = path.name
    assert errors == [
        f"{name}:3: score: must be from 1 to 5 (csat campaign)",
        f"{name}:4: invitation: the invitation was answered already",
        f"{name}:5: responded_at: after the invitation expired",
        f"{name}:6: invitation: unknown invitation number",
        f"{name}:7: customer_id: the customer was not invited in this campaign",
        f"{name}:8: campaign: unknown campaign code",
        f"{name}:9: invitation: answered on line 2 of this file",
    ]
    assert not result.written
    assert responses(engine) == 1  # only the answer recorded before the import
    assert invitation_status(engine, fine.invitation_id) is InvitationStatus.SENT


def test_cli_imports_responses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_cli.main import app

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    reset_settings_cache()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(url)
    invitation = make_invitation(engine, now=datetime.now(UTC))
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    good = write_csv(
        tmp_path / "ok.csv",
        HEADER,
        [row(invitation=str(invitation.invitation_id), responded_at=recent)],
    )
    first = runner.invoke(app, ["import", "responses", str(good)])
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{good}: responses: inserted 1, updated 0, unchanged 0\n"
    bad = write_csv(tmp_path / "bad.csv", HEADER, [row(invitation="x", responded_at=recent)])
    second = runner.invoke(app, ["import", "responses", str(bad)])
    assert second.exit_code == 1
    assert second.stderr.splitlines() == [
        f"{bad}:2: invitation: not an invitation number (a whole number)",
        f"{bad}: 1 error(s) in responses file; nothing was imported",
    ]
    assert responses(engine) == 1
    engine.dispose()
    reset_settings_cache()


def test_columns_are_documented() -> None:
    spec: Any = KINDS["responses"]
    assert [c.name for c in spec.columns if c.required] == ["score", "responded_at"]


def test_as_complaint_opens_a_complaint_at_the_answers_time(engine: Engine, tmp_path: Path) -> None:
    from crm_db.defaults import ensure_default_policies
    from crm_db.enums import ComplaintSource
    from crm_db.models import Complaint

    with session_scope(engine) as session:
        ensure_default_policies(session, now=NOW)
    marked = make_invitation(engine, now=NOW)
    plain = make_invitation(engine, now=NOW)
    # A file written before the column existed still imports (and raises no complaint).
    old_header = [name for name in HEADER if name != "as_complaint"]
    old = write_csv(
        tmp_path / "old.csv", old_header, [row(invitation=str(plain.invitation_id), score="2")]
    )
    assert run_import(engine, old)[1] == []
    bad = write_csv(
        tmp_path / "bad.csv",
        HEADER,
        [
            row(invitation=str(marked.invitation_id), score="1", as_complaint="yes"),
            row(invitation="9", as_complaint="maybe", suggestion="x"),
        ],
    )
    result, errors = run_import(engine, bad)
    assert errors == [
        f"{bad.name}:2: as_complaint: treating as a complaint needs a suggestion",
        f"{bad.name}:3: as_complaint: not a boolean (use true/false, 1/0 or yes/no)",
    ]
    good = write_csv(
        tmp_path / "good.csv",
        HEADER,
        [
            row(
                invitation=str(marked.invitation_id),
                score="1",
                suggestion="电话里说发票开错了",
                as_complaint="yes",
                source="phone",
            )
        ],
    )
    for _ in range(2):  # the re-import records nothing and opens nothing twice
        assert run_import(engine, good)[1] == []
    with session_scope(engine) as session:
        [complaint] = session.scalars(select(Complaint)).all()
        response_id = session.execute(
            select(SurveyResponse.id).where(SurveyResponse.invitation_id == marked.invitation_id)
        ).scalar_one()
        assert (complaint.source, complaint.source_ref) == (
            ComplaintSource.SURVEY,
            f"survey:{response_id}",
        )
        assert complaint.customer_id == marked.customer_id
        assert complaint.description == "电话里说发票开错了"
        # Received when the customer said it, not when it was typed in.
        assert complaint.received_at == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
