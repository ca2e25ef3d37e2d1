"""The target report emails (IO): one per region manager (their region only) and one per
marketing admin and executive (the company view), composed from a reconciliation and queued
in the snapshot's transaction (``tasks.targets.reconciliation.write_snapshot``).

Keys ``target_report:<kind>:<rule>:<period>:staff:<id>``: a re-run supersedes the snapshot but
queues nothing again; with ``resend`` the keys carry the new revision (``...:rev2``), so each
revision is sent at most once. Each email carries an XLSX of its view (one sheet per view:
the region; or the company and each region). Charts are not built yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from crm_db.enums import StaffRole, TargetScope
from crm_db.models import Branch, Region
from tasks.common.directory import Directory, StaffRecord, load_directory
from tasks.mail.message import Attachment
from tasks.mail.outbox import NewMessage
from tasks.mail.render import TEMPLATE_ROOT, resolve_locale
from tasks.targets.reconciliation import Reconciliation
from tasks.targets.rules.reconcile import ResultRow
from tasks.targets.rules.reports import (
    Member,
    company_view,
    flag_counts,
    members,
    region_view,
    report_key,
    sheet_rows,
)
from tasks.targets.workbook import MIMETYPE, Sheet, workbook

KIND = "target_report"
HEADERS = {
    "zh-CN": (
        "名称",
        "层级",
        "指标",
        "目标",
        "按进度目标",
        "实际",
        "完成率",
        "进度",
        "上月",
        "环比",
        "去年同期",
        "同比",
        "排名",
        "标记",
    ),
    "en": (
        "name",
        "level",
        "metric",
        "target",
        "pro-rated target",
        "actual",
        "completion",
        "pace",
        "previous month",
        "MoM",
        "last year",
        "YoY",
        "rank",
        "flags",
    ),
}
COMPANY_ROLES = (StaffRole.MARKETING_ADMIN, StaffRole.EXECUTIVE)


@dataclass(frozen=True)
class Recipients:
    regions: list[tuple[StaffRecord, int]]  # (region manager, region id)
    company: list[StaffRecord]


def recipients(directory: Directory) -> Recipients:
    regions = []
    for region_id, manager_id in sorted(directory.region_managers.items()):
        manager = directory.member(manager_id)
        if manager and manager.reachable and manager.role is StaffRole.REGION_MANAGER:
            regions.append((manager, region_id))
    company = sorted(
        (s for s in directory.staff.values() if s.role in COMPANY_ROLES and s.reachable),
        key=lambda s: s.id,
    )
    return Recipients(regions, company)


def member_names(conn: Connection, company_name: str) -> dict[Member, str]:
    names: dict[Member, str] = {Member(TargetScope.COMPANY, 0): company_name}
    for region_id, name in conn.execute(select(Region.id, Region.name)):
        names[Member(TargetScope.REGION, region_id)] = name
    for branch_id, name in conn.execute(select(Branch.id, Branch.name)):
        names[Member(TargetScope.BRANCH, branch_id)] = name
    return names


def compose_reports(
    conn: Connection,
    result: Reconciliation,
    *,
    revision: int,
    resend: bool,
    company_name: str,
    run_id: int | None,
) -> list[NewMessage]:
    """Every report of this reconciliation (the caller enqueues them)."""
    directory = load_directory(conn)
    names = member_names(conn, company_name)
    plan = result.plan
    rule = result.policies.periods.rule.value
    key_revision = revision if resend and revision > 1 else None
    common: dict[str, Any] = {
        "kind": plan.kind.value,
        "period": plan.label,
        "month": plan.month.label,
        "start": plan.current.start.isoformat(),
        "through": plan.through.isoformat(),
        "target_version": result.target_version_id,
        "revision": revision,
    }
    who = recipients(directory)
    jobs: list[tuple[StaffRecord, str, str, list[Any]]] = [
        (manager, "region", names.get(Member(TargetScope.REGION, region_id), ""), view)
        for manager, region_id in who.regions
        for view in [region_view(result.rows, region_id)]
    ]
    company = company_view(result.rows)
    jobs += [(person, "company", company_name, company) for person in who.company]
    codes = dict(conn.execute(select(Region.id, Region.code)).tuples().all())
    labels = load_labels()
    region_of = {manager.id: region_id for manager, region_id in who.regions}
    messages = []
    for person, scope_kind, scope_name, view in jobs:
        locale = resolve_locale(person.locale)
        if scope_kind == "region":
            region = region_of[person.id]
            sheets = [(scope_name, view)]
            filename = f"targets-{plan.label}-{codes.get(region, region)}.xlsx"
        else:
            sheets = [(company_name, view)] + [
                (names.get(Member(TargetScope.REGION, r), str(r)), region_view(result.rows, r))
                for r in result.organisation.regions
            ]
            filename = f"targets-{plan.label}-company.xlsx"
        attachment = Attachment(
            filename=_safe_filename(filename),
            content_type=MIMETYPE,
            data=report_workbook(sheets, names, labels.get(locale, {}), locale),
        )
        assert person.email is not None  # reachable
        messages.append(
            NewMessage(
                idempotency_key=report_key(
                    plan.kind.value, rule, plan.label, person.id, key_revision
                ),
                kind=KIND,
                locale=person.locale or "zh-CN",
                recipient_email=person.email,
                recipient_name=person.name,
                customer_id=None,
                staff_id=person.id,
                run_id=run_id,
                attachments=(attachment,),
                context={
                    **common,
                    "recipient_name": person.name,
                    "scope_kind": scope_kind,
                    "scope_name": scope_name,
                    "members": members(view, names),
                    "flag_counts": flag_counts(
                        view if scope_kind == "region" else region_branches(result.rows)
                    ),
                },
            )
        )
    return messages


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def load_labels() -> dict[str, dict[str, str]]:
    """The metric names per locale, from the email templates' labels."""
    data = json.loads((TEMPLATE_ROOT / "labels.json").read_text(encoding="utf-8"))
    return {locale: groups.get("target_metric", {}) for locale, groups in data.items()}


def report_workbook(
    sheets: list[tuple[str, list[ResultRow]]],
    names: dict[Member, str],
    metric_names: dict[str, str],
    locale: str,
) -> bytes:
    """The XLSX of a report: one sheet per view, every member x metric."""
    built = []
    for title, view in sheets:
        rows, styles = sheet_rows(view, names, metric_names)
        built.append(Sheet(title, HEADERS.get(locale, HEADERS["en"]), rows, styles))
    return workbook(built)


def region_branches(rows: list[Any]) -> list[Any]:
    """The company's flag counts are over every branch."""
    return [r for r in rows if r.scope is TargetScope.BRANCH]
