"""``crm import contacts``: the contact history, and the revisits it completes in the same
transaction (``record_outcome``'s rule: a reached outcome closes an open revisit, an attempt
leaves it open), on SQLite and PostgreSQL; every bad input with its exact error line; the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.csv_import import ImportAborted, ImportOptions, ImportResult, import_csv
from crm_db.csv_import.docs import column_table
from crm_db.csv_import.id_map import DenseIdMap, id_map
from crm_db.csv_import.kinds import KINDS
from crm_db.csv_import.kinds.contacts import NOTES_MAX_LENGTH, SPEC, validate_contact
from crm_db.csv_import.lookups import Lookups, StaffRef
from crm_db.enums import ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Revisit
from crm_db.session import make_engine
from tasks.revisits.completion import MAX_NOTES, REACHED
from tests.crm_db.csv_factories import (
    CONTACT_HEADER,
    Org,
    contact_row,
    insert_fails_for,
    make_org,
    make_revisit,
    write_csv,
)

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
ATTEMPTS = sorted(set(ContactOutcome) - REACHED)


def run_import(engine: Engine, path: Path, **options: Any) -> tuple[ImportResult, list[str]]:
    errors: list[str] = []
    settings: dict[str, Any] = {
        "now": NOW,
        "default_timezone": "Asia/Shanghai",
        "default_locale": "zh-CN",
        **options,
    }
    result = import_csv(
        engine,
        "contacts",
        path,
        ImportOptions(**settings),
        lambda e: errors.append(e.format(path.name)),
    )
    return result, errors


def summary(result: ImportResult) -> tuple[int, int, int]:
    return result.counts.inserted, result.counts.updated, result.counts.unchanged


def contacts(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            row.external_id: row
            for row in conn.execute(select(ContactHistory).order_by(ContactHistory.id))
        }


def contact_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ContactHistory)).scalar_one())


def revisit_state(engine: Engine, revisit_id: int) -> tuple[Any, ...]:
    with engine.connect() as conn:
        row = conn.execute(
            select(Revisit.status, Revisit.outcome, Revisit.completed_at, Revisit.notes).where(
                Revisit.id == revisit_id
            )
        ).one()
    return tuple(row)


@pytest.fixture
def org(engine: Engine) -> Org:
    return make_org(engine)


# ---------------------------------------------------------------- successful imports


def test_contacts_insert_then_reimport_changes_nothing(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    rows = [
        contact_row("H1"),
        # Naive: read in CRM_TIMEZONE (Asia/Shanghai). S9 has left since: history is history.
        contact_row(
            "H2",
            staff_id="S9",
            channel="phone",
            outcome="no_answer",
            occurred_at="2026-03-06 09:15",
            notes="",
        ),
        contact_row(
            "H3",
            customer_id="C2",
            staff_id="",
            channel="email",
            outcome="issue_raised",
            occurred_at="2026-03-07T01:00:00Z",
            notes="第一行\n第二行\r\n\t第三行",
        ),
        contact_row(
            "H4", channel="survey", outcome="rescheduled", occurred_at="2026-03-10T12:05:00+08:00"
        ),  # exactly now + 5 minutes
    ]
    path = write_csv(tmp_path / "contacts.csv", CONTACT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [] and result.written and summary(result) == (4, 0, 0)

    found = contacts(engine)
    c1, c2 = org.customer_ids["C1"], org.customer_ids["C2"]
    assert [
        (r.customer_id, r.staff_id, r.channel, r.outcome, r.occurred_at, r.revisit_id)
        for r in found.values()
    ] == [
        (
            c1,
            org.staff_ids["S1"],
            ContactChannel.VISIT,
            ContactOutcome.COMPLETED,
            datetime(2026, 3, 5, 2, 0, tzinfo=UTC),
            None,
        ),
        (
            c1,
            org.staff_ids["S9"],
            ContactChannel.PHONE,
            ContactOutcome.NO_ANSWER,
            datetime(2026, 3, 6, 1, 15, tzinfo=UTC),
            None,
        ),
        (
            c2,
            None,
            ContactChannel.EMAIL,
            ContactOutcome.ISSUE_RAISED,
            datetime(2026, 3, 7, 1, 0, tzinfo=UTC),
            None,
        ),
        (
            c1,
            org.staff_ids["S1"],
            ContactChannel.SURVEY,
            ContactOutcome.RESCHEDULED,
            datetime(2026, 3, 10, 4, 5, tzinfo=UTC),
            None,
        ),
    ]
    assert found["H1"].notes == "客户满意，下次带新卡资料"
    assert found["H2"].notes is None  # an empty cell is no note, not an empty one
    assert found["H3"].notes == "第一行\n第二行\r\n\t第三行"

    again, errors = run_import(engine, path)
    assert errors == [] and summary(again) == (0, 0, 4)
    assert contact_count(engine) == 4

    rows[1] = contact_row(
        "H2",
        staff_id="S9",
        channel="phone",
        outcome="no_answer",
        occurred_at="2026-03-06 09:15",
        notes="回拨两次",
    )
    rows.append(contact_row("H5", customer_id="C3"))
    write_csv(tmp_path / "contacts.csv", CONTACT_HEADER, rows)
    changed, errors = run_import(engine, path)
    assert errors == [] and summary(changed) == (1, 1, 3)
    assert contacts(engine)["H2"].notes == "回拨两次" and contact_count(engine) == 5


@pytest.mark.parametrize("outcome", sorted(REACHED))
def test_a_reached_outcome_closes_the_open_revisit_once(
    engine: Engine, org: Org, tmp_path: Path, outcome: ContactOutcome
) -> None:
    revisit = make_revisit(engine, org.customer_ids["C1"], assignee_id=org.staff_ids["S1"])
    other = make_revisit(engine, org.customer_ids["C2"])  # not named: stays open
    path = write_csv(
        tmp_path / "contacts.csv",
        CONTACT_HEADER,
        [contact_row("H1", outcome=outcome.value, revisit_id=str(revisit), notes="已回访")],
    )
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (1, 0, 0)
    at = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    assert revisit_state(engine, revisit) == (RevisitStatus.DONE, outcome.value, at, "已回访")
    assert revisit_state(engine, other) == (RevisitStatus.OPEN, None, None, None)
    assert contacts(engine)["H1"].revisit_id == revisit

    again, errors = run_import(engine, path)
    assert errors == [] and summary(again) == (0, 0, 1)
    assert contact_count(engine) == 1  # no second contact row
    assert revisit_state(engine, revisit) == (RevisitStatus.DONE, outcome.value, at, "已回访")


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_an_attempt_keeps_the_revisit_open_until_a_later_row_reaches_the_customer(
    engine: Engine, org: Org, tmp_path: Path, attempt: ContactOutcome
) -> None:
    revisit = make_revisit(engine, org.customer_ids["C1"])
    rows = [contact_row("H1", channel="phone", outcome=attempt.value, revisit_id=str(revisit))]
    path = write_csv(tmp_path / "contacts.csv", CONTACT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (1, 0, 0)
    assert revisit_state(engine, revisit) == (RevisitStatus.OPEN, None, None, None)
    assert contacts(engine)["H1"].revisit_id == revisit  # the attempt is in the file

    rows.append(
        contact_row(
            "H2",
            outcome="completed",
            revisit_id=str(revisit),
            occurred_at="2026-03-08T16:00:00+08:00",
            notes="",
        )
    )
    write_csv(path, CONTACT_HEADER, rows)
    later, errors = run_import(engine, path)
    assert errors == [] and summary(later) == (1, 0, 1)
    assert revisit_state(engine, revisit) == (
        RevisitStatus.DONE,
        "completed",
        datetime(2026, 3, 8, 8, 0, tzinfo=UTC),
        None,
    )


def test_a_corrected_attempt_closes_the_revisit(engine: Engine, org: Org, tmp_path: Path) -> None:
    revisit = make_revisit(engine, org.customer_ids["C1"])
    path = write_csv(
        tmp_path / "c.csv",
        CONTACT_HEADER,
        [contact_row("H1", outcome="no_answer", revisit_id=str(revisit))],
    )
    run_import(engine, path)
    write_csv(
        path, CONTACT_HEADER, [contact_row("H1", outcome="completed", revisit_id=str(revisit))]
    )
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (0, 1, 0)
    assert revisit_state(engine, revisit)[:2] == (RevisitStatus.DONE, "completed")
    assert contact_count(engine) == 1


@pytest.mark.parametrize("status", [RevisitStatus.DONE, RevisitStatus.CANCELLED])
def test_a_closed_revisit_is_left_as_it_is(
    engine: Engine, org: Org, tmp_path: Path, status: RevisitStatus
) -> None:
    """E.g. closed from the digest link before the CRM's export arrived: the contact is
    recorded, the revisit keeps its own outcome and time."""
    revisit = make_revisit(engine, org.customer_ids["C1"], status=status)
    closed_at = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            update(Revisit)
            .where(Revisit.id == revisit)
            .values(outcome="issue_raised", completed_at=closed_at)
        )
    path = write_csv(
        tmp_path / "c.csv", CONTACT_HEADER, [contact_row("H1", revisit_id=str(revisit))]
    )
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (1, 0, 0)
    assert revisit_state(engine, revisit) == (status, "issue_raised", closed_at, None)


@pytest.mark.parametrize("chunk_size", [1, 100])
def test_the_first_reaching_row_in_the_file_closes_the_revisit(
    engine: Engine, org: Org, tmp_path: Path, chunk_size: int
) -> None:
    revisit = make_revisit(engine, org.customer_ids["C1"])
    rows = [
        contact_row(
            "H1",
            outcome="rescheduled",
            revisit_id=str(revisit),
            occurred_at="2026-03-05T09:00:00+08:00",
        ),
        contact_row(
            "H2",
            outcome="issue_raised",
            revisit_id=str(revisit),
            occurred_at="2026-03-06T09:00:00+08:00",
            notes="油品问题",
        ),
        contact_row(
            "H3",
            outcome="completed",
            revisit_id=str(revisit),
            occurred_at="2026-03-07T09:00:00+08:00",
        ),
    ]
    path = write_csv(tmp_path / "c.csv", CONTACT_HEADER, rows)
    result, errors = run_import(engine, path, chunk_size=chunk_size)
    assert errors == [] and summary(result) == (3, 0, 0)
    assert revisit_state(engine, revisit) == (
        RevisitStatus.DONE,
        "issue_raised",
        datetime(2026, 3, 6, 1, 0, tzinfo=UTC),
        "油品问题",
    )


def test_dry_run_rolls_back_contacts_and_revisit_closures(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    revisit = make_revisit(engine, org.customer_ids["C1"])
    path = write_csv(
        tmp_path / "c.csv", CONTACT_HEADER, [contact_row("H1", revisit_id=str(revisit))]
    )
    result, errors = run_import(engine, path, dry_run=True)
    assert errors == [] and summary(result) == (1, 0, 0) and not result.written
    assert contact_count(engine) == 0
    assert revisit_state(engine, revisit)[0] == RevisitStatus.OPEN


@pytest.fixture
def failing_contact_insert(engine: Engine) -> Iterator[str]:
    """A real database failure: a trigger that rejects one contact's insert."""
    with insert_fails_for(engine, "contact_history", "H0007"):
        yield "H0007"


def test_a_failure_after_a_revisit_closed_rolls_the_closure_back(
    engine: Engine, org: Org, tmp_path: Path, failing_contact_insert: str
) -> None:
    revisit = make_revisit(engine, org.customer_ids["C1"])
    rows = [contact_row("H0001", revisit_id=str(revisit))]  # chunk 1 closes the revisit
    rows += [contact_row(f"H{n:04d}", customer_id="C2") for n in range(2, 11)]
    path = write_csv(tmp_path / "c.csv", CONTACT_HEADER, rows)
    with pytest.raises(ImportAborted, match="forced failure"):
        run_import(engine, path, chunk_size=3)  # H0007 is in chunk 3
    assert contact_count(engine) == 0
    assert revisit_state(engine, revisit) == (RevisitStatus.OPEN, None, None, None)


# ---------------------------------------------------------------- every error, exact lines


def test_contact_file_reports_every_error_and_writes_nothing(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    mine = make_revisit(engine, org.customer_ids["C1"])
    theirs = make_revisit(engine, org.customer_ids["C2"])
    rows = [
        contact_row("H1", revisit_id=str(mine)),  # 2: valid
        contact_row("H2", customer_id="C404", staff_id="S404"),  # 3
        contact_row("H3", channel="sms", outcome="done"),  # 4
        contact_row("H4", occurred_at="2026-03-05"),  # 5
        contact_row("H5", occurred_at="2026-03-05T24:30:00+08:00"),  # 6
        contact_row("H6", occurred_at="2026-03-10T12:05:01+08:00"),  # 7: now + 5 min + 1 s
        contact_row("H7", occurred_at="2027-03-01T09:00:00+08:00"),  # 8: a year typo
        contact_row("H8", revisit_id=str(theirs)),  # 9: C2's revisit on a C1 row
        contact_row("H9", revisit_id=str(theirs + 1000)),  # 10
        contact_row("H10", revisit_id="#12"),  # 11
        contact_row("H1", outcome="no_answer"),  # 12: duplicate of line 2
        contact_row("H11", notes="bell\x07"),  # 13
        contact_row("H12", notes="nul\x00byte"),  # 14
        contact_row("H13", notes="esc \x1b[31m 秘密"),  # 15
        contact_row("H14", notes="line\u2028separator"),  # 16
        contact_row("H15", notes="x" * (NOTES_MAX_LENGTH + 1)),  # 17
        contact_row("H16", customer_id="C404", revisit_id=str(theirs)),  # 18
        contact_row("", channel="", outcome="", occurred_at=""),  # 19
    ]
    path = write_csv(tmp_path / "f.csv", CONTACT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [
        "f.csv:3: customer_id: unknown customer external id",
        "f.csv:3: staff_id: unknown staff external id",
        "f.csv:4: channel: unknown value (allowed: visit, phone, email, survey)",
        "f.csv:4: outcome: unknown value (allowed: completed, no_answer, rescheduled, "
        "issue_raised)",
        "f.csv:5: occurred_at: not a date-time (expected YYYY-MM-DDTHH:MM[:SS][+08:00]; "
        "no offset = local time)",
        "f.csv:6: occurred_at: not a valid time of day or offset",
        "f.csv:7: occurred_at: in the future (more than 5 minutes after the import started)",
        "f.csv:8: occurred_at: in the future (more than 5 minutes after the import started)",
        "f.csv:9: revisit_id: the revisit belongs to another customer",
        "f.csv:10: revisit_id: unknown revisit id (no revisit with this number)",
        "f.csv:11: revisit_id: not a revisit id (a whole number, as shown in the digest)",
        "f.csv:12: external_id: duplicate external_id (first on line 2)",
        "f.csv:13: notes: contains a control character (U+0007)",
        "f.csv:14: notes: contains a control character (U+0000)",
        "f.csv:15: notes: contains a control character (U+001B)",
        "f.csv:16: notes: contains a control character (U+2028)",
        f"f.csv:17: notes: longer than {NOTES_MAX_LENGTH} characters",
        # The customer is unknown, so only the revisit's existence can be checked.
        "f.csv:18: customer_id: unknown customer external id",
        "f.csv:19: external_id: is required",
        "f.csv:19: channel: is required (one of: visit, phone, email, survey)",
        "f.csv:19: outcome: is required (one of: completed, no_answer, rescheduled, issue_raised)",
        "f.csv:19: occurred_at: is required",
    ]
    assert not result.ok and not result.written and result.errors == len(errors)
    assert contact_count(engine) == 0
    assert revisit_state(engine, mine)[0] == RevisitStatus.OPEN  # line 2 was valid: not closed
    assert not any("bell" in line or "秘密" in line for line in errors)  # notes never echoed


def test_missing_revisit_column_is_a_header_error(engine: Engine, org: Org, tmp_path: Path) -> None:
    header = [name for name in CONTACT_HEADER if name != "revisit_id"]
    path = write_csv(tmp_path / "f.csv", header, [contact_row("H1")])
    _, errors = run_import(engine, path)
    assert errors == ["f.csv:1: header: missing required columns: revisit_id"]


# ---------------------------------------------------------------- the pure validator


def _lookups(now: datetime | None = NOW) -> Lookups:
    return Lookups(
        default_timezone="Asia/Shanghai",
        default_locale="zh-CN",
        staff={"S1": StaffRef(11, True), "S9": StaffRef(19, False)},
        customers={"C1": 1, "C2": 2},
        revisits={7: 1, 8: 2},
        now=now,
    )


@pytest.mark.parametrize(
    ("occurred_at", "ok"),
    [
        ("2026-03-10T04:05:00Z", True),
        ("2026-03-10T04:05:00.000001Z", False),
        ("2026-03-10 12:05", True),  # naive, Asia/Shanghai: 04:05 UTC
        ("2026-03-10 12:06", False),
        ("2026-03-10T06:05:00+02:00", True),
        ("2026-03-10T06:06:00+02:00", False),
    ],
)
def test_future_limit_is_now_plus_five_minutes(occurred_at: str, ok: bool) -> None:
    row = {**contact_row("H1", occurred_at=occurred_at), "revisit_id": "7"}
    result = validate_contact(row, 2, _lookups())
    assert isinstance(result, list) is not ok


def test_validator_resolves_ids_and_accepts_staff_who_left() -> None:
    row = contact_row("H1", customer_id="C2", staff_id="S9", revisit_id="0008", notes="  ")
    record = validate_contact(row, 2, _lookups())
    assert not isinstance(record, list)
    assert (record.customer_id, record.staff_id, record.revisit_id, record.notes) == (
        2,
        19,
        8,
        None,
    )


def test_validator_needs_the_import_clock() -> None:
    with pytest.raises(ValueError, match="Lookups.now"):
        validate_contact(contact_row("H1"), 2, _lookups(now=None))


def test_notes_limit_and_reached_outcomes_follow_record_outcome() -> None:
    assert NOTES_MAX_LENGTH == MAX_NOTES
    outcome_doc = next(c.description for c in SPEC.columns if c.name == "outcome")
    reached_doc = outcome_doc.split("(", 1)[1]
    assert {o for o in ContactOutcome if o.value in reached_doc} == REACHED


def test_id_map_is_an_array_when_dense_and_a_dict_when_sparse() -> None:
    # Keys 5..8 with a gap at 7 (a deleted row); 10 and 3 arrived after the range was measured.
    dense = id_map(iter([(5, 50), (6, 60), (8, 80), (10, 100), (3, 30)]), 5, 8, 3)
    assert isinstance(dense, DenseIdMap)
    assert dict(dense) == {5: 50, 6: 60, 8: 80, 10: 100, 3: 30} and len(dense) == 5
    assert [dense.get(key) for key in (4, 7, 9, 0, -1, 11)] == [None] * 6
    assert 8 in dense and 7 not in dense
    sparse = id_map(iter([(1, 10), (1_000_000_000, 20)]), 1, 1_000_000_000, 2)
    assert type(sparse) is dict and sparse == {1: 10, 1_000_000_000: 20}
    assert id_map(iter([]), None, None, 0) == {}


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, Any, str]]:
    from crm_cli.main import app

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_MODE", "production")
    monkeypatch.setenv("CRM_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    reset_settings_cache()
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    yield runner, app, url
    reset_settings_cache()


def test_cli_imports_contacts_closes_the_revisit_and_reimports(
    cli_db: tuple[CliRunner, Any, str], tmp_path: Path
) -> None:
    runner, app, url = cli_db
    engine = make_engine(url)
    org = make_org(engine)
    revisit = make_revisit(engine, org.customer_ids["C1"])
    path = write_csv(
        tmp_path / "contacts.csv",
        CONTACT_HEADER,
        [contact_row("H1", revisit_id=str(revisit)), contact_row("H2", outcome="no_answer")],
    )
    first = runner.invoke(app, ["import", "contacts", str(path)])
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{path}: contacts: inserted 2, updated 0, unchanged 0\n"
    assert revisit_state(engine, revisit)[:2] == (RevisitStatus.DONE, "completed")
    second = runner.invoke(app, ["import", "contacts", str(path)])
    assert second.stdout == f"{path}: contacts: inserted 0, updated 0, unchanged 2\n"
    assert contact_count(engine) == 2
    engine.dispose()


def test_cli_reports_errors_without_the_notes(
    cli_db: tuple[CliRunner, Any, str], tmp_path: Path
) -> None:
    runner, app, url = cli_db
    engine = make_engine(url)
    make_org(engine)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    path = write_csv(
        tmp_path / "bad.csv",
        CONTACT_HEADER,
        [
            contact_row("H1", occurred_at=tomorrow),
            contact_row("H2", notes="客户手机 13812345678\x1b", revisit_id="99"),
        ],
    )
    result = runner.invoke(app, ["import", "contacts", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:2: occurred_at: in the future (more than 5 minutes after the import started)",
        f"{path}:3: notes: contains a control character (U+001B)",
        f"{path}:3: revisit_id: unknown revisit id (no revisit with this number)",
        f"{path}: 3 error(s) in contacts file; nothing was imported",
    ]
    assert "13812345678" not in result.output
    assert contact_count(engine) == 0
    engine.dispose()


def test_cli_columns_prints_the_contacts_table(cli_db: tuple[CliRunner, Any, str]) -> None:
    runner, app, _ = cli_db
    result = runner.invoke(app, ["import", "columns", "contacts"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"### contacts\n\n{column_table(KINDS['contacts'])}\n\n"
    for name in CONTACT_HEADER:
        assert f"| `{name}` |" in result.stdout
    assert "| `revisit_id` | optional |" in result.stdout
    listed = runner.invoke(app, ["import", "--help"])
    assert "contacts" in listed.stdout
