"""The target report emails (IO): one per region manager (their region only) and one per
marketing admin and executive (the company view), composed from a reconciliation and queued
in the snapshot's transaction (``tasks.targets.reconciliation.write_snapshot``).

Keys ``target_report:<kind>:<rule>:<period>:staff:<id>``: a re-run supersedes the snapshot but
queues nothing again; with ``resend`` the keys carry the new revision (``...:rev2``), so each
revision is sent at most once.

Each email carries its view's chart inline (a PNG part of the HTML's ``multipart/related``,
shown by ``<img src="cid:...">``; ``tasks.targets.charts``), the customer development
leaderboard (客户开发英雄榜, ``rules.leaderboard``) and, in a monthly run that closes a quarter,
the quarter's award list; and an XLSX of its view (one sheet per view - the region; or the
company and each region - then the leaderboard and the award list). A view's chart and
workbook are built once per locale and shared by every recipient of that view.

The same files of every view (company and each region, in ``FILE_LOCALE``) are written under
``var/reports/targets/<kind>-<rule>-<period>-rev<N>/`` once the snapshot is committed
(``write_report_files``); a dry run writes none.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from crm_core.paths import var_dir
from crm_db.enums import StaffRole, TargetScope
from crm_db.models import Branch, Region
from tasks.common.directory import Directory, StaffRecord, load_directory
from tasks.mail.message import Attachment
from tasks.mail.outbox import NewMessage
from tasks.mail.render import TEMPLATE_ROOT, resolve_locale
from tasks.targets.charts import chart_spec, render_chart
from tasks.targets.reconciliation import Reconciliation
from tasks.targets.rules.leaderboard import (
    Ranked,
    award_list,
    award_places,
    developed,
    in_region,
    leaderboard,
)
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
BOARD_HEADERS = {
    "zh-CN": ("排名", "姓名", "片区", "新开发客户数", "首次办卡充值金额（元）", "状态"),
    "en": ("rank", "name", "region", "new customers", "first recharges (CNY)", "status"),
}
BOARD_SHEET = {"zh-CN": "客户开发英雄榜", "en": "leaderboard"}
AWARD_SHEET = {"zh-CN": "季度奖励 {quarter}", "en": "award {quarter}"}
STATUS = {"zh-CN": ("在职", "已离职"), "en": ("active", "left")}
BOARD_STYLES = ("count", "text", "text", "count", "money", "text")
COMPANY_ROLES = (StaffRole.MARKETING_ADMIN, StaffRole.EXECUTIVE)
# An email lists the first entries; its XLSX has them all.
EMAIL_BOARD_LIMIT = 20
EMAIL_AWARD_LIMIT = 50
# The files under var/reports/ are in the company's language.
FILE_LOCALE = "zh-CN"
PNG = "image/png"


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


@dataclass(frozen=True)
class ReportFile:
    view: str  # "company" or the region's code
    filename: str
    data: bytes


@dataclass(frozen=True)
class BuiltReports:
    messages: list[NewMessage]
    files: list[ReportFile]  # every view's XLSX and chart, in FILE_LOCALE


@dataclass(frozen=True)
class _View:
    code: str  # "company" or the region's code: file names, content ids
    scope_kind: str  # company | region
    name: str
    rows: list[ResultRow]
    sheets: list[tuple[str, list[ResultRow]]]
    board: list[Ranked]
    award: list[Ranked] | None  # None: this run closes no quarter


@dataclass(frozen=True)
class _Built:
    """A view in one locale: what every recipient of it shares."""

    context: dict[str, Any]
    chart: Attachment | None
    workbook: Attachment


class _Composer:
    """The views of one reconciliation and, per (view, locale), their chart and workbook."""

    def __init__(self, conn: Connection, result: Reconciliation, company_name: str) -> None:
        self.result = result
        self.company_name = company_name
        self.directory = load_directory(conn)
        self.names = member_names(conn, company_name)
        self.codes = dict(conn.execute(select(Region.id, Region.code)).tuples().all())
        self.metric_names = load_labels()
        flags = result.policies.flags
        self.thresholds = (float(flags.behind_below * 100), float(flags.star_above * 100))
        self.staff_region = {
            s.id: s.region_id if s.region_id is not None else self.directory.region_of(s.branch_id)
            for s in self.directory.staff.values()
        }
        self.board = leaderboard(developed(result.current_totals))
        self.award: list[Ranked] | None = None
        self.award_ranked = 0
        if result.quarter_totals is not None:
            quarter_board = leaderboard(developed(result.quarter_totals))
            self.award = award_list(quarter_board, result.policies.award_top_pct)
            self.award_ranked = len(quarter_board)
        self._views: dict[int | None, _View] = {}
        self._built: dict[tuple[int | None, str], _Built] = {}

    def view(self, region_id: int | None) -> _View:
        """The company's view (None) or a region's."""
        if region_id not in self._views:
            rows = self.result.rows
            if region_id is None:
                sheets = [(self.company_name, company_view(rows))] + [
                    (self._region_name(r), region_view(rows, r))
                    for r in self.result.organisation.regions
                ]
                view = _View(
                    "company",
                    "company",
                    self.company_name,
                    sheets[0][1],
                    sheets,
                    self.board,
                    self.award,
                )
            else:
                own = region_view(rows, region_id)
                view = _View(
                    _safe_filename(str(self.codes.get(region_id, region_id))),
                    "region",
                    self._region_name(region_id),
                    own,
                    [(self._region_name(region_id), own)],
                    in_region(self.board, self.staff_region, region_id),
                    None
                    if self.award is None
                    else in_region(self.award, self.staff_region, region_id),
                )
            self._views[region_id] = view
        return self._views[region_id]

    def _region_name(self, region_id: int) -> str:
        return self.names.get(Member(TargetScope.REGION, region_id), str(region_id))

    def built(self, region_id: int | None, locale: str) -> _Built:
        key = (region_id, locale)
        if key not in self._built:
            self._built[key] = self._build(self.view(region_id), locale)
        return self._built[key]

    def _board_entries(self, entries: Sequence[Ranked], with_status: bool) -> list[dict[str, Any]]:
        result = []
        for entry in entries:
            person = self.directory.member(entry.staff_id)
            region = self.staff_region.get(entry.staff_id)
            item: dict[str, Any] = {
                "rank": entry.rank,
                "name": person.name if person else f"#{entry.staff_id}",
                "region": None if region is None else self._region_name(region),
                "new_customers": entry.new_customers,
                "first_recharge": entry.first_recharge_fen / 100,
            }
            if with_status:
                item["active"] = bool(person and person.active)
            result.append(item)
        return result

    def _build(self, view: _View, locale: str) -> _Built:
        plan = self.result.plan
        entries = members(view.rows, self.names)
        spec = chart_spec(
            entries,
            locale=locale,
            kind=plan.kind.value,
            scope_name=view.name,
            period=plan.label,
            thresholds=self.thresholds,
        )
        chart = None
        if spec is not None:
            chart = Attachment(
                filename=f"targets-{plan.label}-{view.code}.png",
                content_type=PNG,
                data=render_chart(spec),
                content_id=f"targets-chart-{view.code}@crm-flows",
            )
        board = self._board_entries(view.board, with_status=False)
        award_context = None
        award_rows: list[dict[str, Any]] | None = None
        if view.award is not None and plan.quarter is not None:
            award_rows = self._board_entries(view.award, with_status=True)
            award_context = {
                "quarter": plan.quarter.label,
                "start": plan.quarter.start.isoformat(),
                "end": plan.quarter.end.isoformat(),
                "top_pct": self.result.policies.award_top_pct,
                "ranked": self.award_ranked,
                "places": award_places(self.award_ranked, self.result.policies.award_top_pct),
                "entries": award_rows[:EMAIL_AWARD_LIMIT],
                "total": len(award_rows),
            }
        context = {
            "scope_kind": view.scope_kind,
            "scope_name": view.name,
            "members": entries,
            "flag_counts": flag_counts(
                view.rows if view.scope_kind == "region" else region_branches(self.result.rows)
            ),
            "chart": None
            if chart is None or spec is None
            else {"cid": chart.content_id, "alt": spec.title},
            "leaderboard": {"entries": board[:EMAIL_BOARD_LIMIT], "total": len(board)},
            "award": award_context,
        }
        sheets = [
            _member_sheet(title, rows, self.names, self.metric_names.get(locale, {}), locale)
            for title, rows in view.sheets
        ]
        sheets.append(_board_sheet(BOARD_SHEET.get(locale, BOARD_SHEET["en"]), board, locale))
        if award_rows is not None and plan.quarter is not None:
            title = AWARD_SHEET.get(locale, AWARD_SHEET["en"]).format(quarter=plan.quarter.label)
            sheets.append(_board_sheet(title, award_rows, locale))
        attachment = Attachment(
            filename=_safe_filename(f"targets-{plan.label}-{view.code}.xlsx"),
            content_type=MIMETYPE,
            data=workbook(sheets),
        )
        return _Built(context, chart, attachment)

    def files(self) -> list[ReportFile]:
        found = []
        for region_id in [None, *self.result.organisation.regions]:
            built = self.built(region_id, FILE_LOCALE)
            code = self.view(region_id).code
            found.append(ReportFile(code, built.workbook.filename, built.workbook.data))
            if built.chart is not None:
                found.append(ReportFile(code, built.chart.filename, built.chart.data))
        return found


def build_reports(
    conn: Connection,
    result: Reconciliation,
    *,
    revision: int,
    resend: bool,
    company_name: str,
    run_id: int | None,
    with_files: bool = True,
) -> BuiltReports:
    """Every report email of this reconciliation (the caller enqueues them) and, with
    ``with_files``, every view's files for ``var/reports/``."""
    composer = _Composer(conn, result, company_name)
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
    who = recipients(composer.directory)
    jobs: list[tuple[StaffRecord, int | None]] = [
        (manager, region_id) for manager, region_id in who.regions
    ]
    jobs += [(person, None) for person in who.company]
    messages = []
    for person, region_id in jobs:
        built = composer.built(region_id, resolve_locale(person.locale))
        assert person.email is not None  # reachable
        attachments = (built.workbook,) if built.chart is None else (built.chart, built.workbook)
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
                attachments=attachments,
                context={**common, "recipient_name": person.name, **built.context},
            )
        )
    return BuiltReports(messages, composer.files() if with_files else [])


def compose_reports(
    conn: Connection,
    result: Reconciliation,
    *,
    revision: int,
    resend: bool,
    company_name: str,
    run_id: int | None,
) -> list[NewMessage]:
    """The report emails alone (``build_reports`` without the files)."""
    return build_reports(
        conn,
        result,
        revision=revision,
        resend=resend,
        company_name=company_name,
        run_id=run_id,
        with_files=False,
    ).messages


def reports_folder(result: Reconciliation, revision: int, root: Path | None = None) -> Path:
    """``var/reports/targets/<kind>-<rule>-<period>-rev<N>``: one folder per snapshot."""
    plan = result.plan
    name = f"{plan.kind.value}-{result.policies.periods.rule.value}-{plan.label}-rev{revision}"
    return (root or var_dir()) / "reports" / "targets" / _safe_filename(name)


def write_report_files(files: Sequence[ReportFile], folder: Path) -> list[Path]:
    """Write ``files`` into ``folder``, each through a temporary name and an atomic rename (a
    reader never sees half a file); a re-run of the same revision replaces them whole."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in files:
        path = folder / _safe_filename(item.filename)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(item.data)
        os.replace(temporary, path)
        written.append(path)
    return written


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def load_labels() -> dict[str, dict[str, str]]:
    """The metric names per locale, from the email templates' labels."""
    data = json.loads((TEMPLATE_ROOT / "labels.json").read_text(encoding="utf-8"))
    return {locale: groups.get("target_metric", {}) for locale, groups in data.items()}


def _member_sheet(
    title: str,
    view: list[ResultRow],
    names: dict[Member, str],
    metric_names: dict[str, str],
    locale: str,
) -> Sheet:
    rows, styles = sheet_rows(view, names, metric_names)
    return Sheet(title, HEADERS.get(locale, HEADERS["en"]), rows, styles)


def report_workbook(
    sheets: list[tuple[str, list[ResultRow]]],
    names: dict[Member, str],
    metric_names: dict[str, str],
    locale: str,
) -> bytes:
    """The XLSX of a report's member views: one sheet per view, every member x metric."""
    return workbook([_member_sheet(t, v, names, metric_names, locale) for t, v in sheets])


def _board_sheet(title: str, entries: Sequence[Mapping[str, Any]], locale: str) -> Sheet:
    """A leaderboard or award sheet: rank, name, region, new customers, first recharges and
    (award lists) whether the person is still with the company."""
    status = STATUS.get(locale, STATUS["en"])
    rows = [
        [
            e["rank"],
            e["name"],
            e["region"],
            e["new_customers"],
            e["first_recharge"],
            None if "active" not in e else status[0] if e["active"] else status[1],
        ]
        for e in entries
    ]
    return Sheet(
        title, BOARD_HEADERS.get(locale, BOARD_HEADERS["en"]), rows, [BOARD_STYLES] * len(rows)
    )


def region_branches(rows: list[Any]) -> list[Any]:
    """The company's flag counts are over every branch."""
    return [r for r in rows if r.scope is TargetScope.BRANCH]


def sample_images(locale: str) -> dict[str, bytes]:
    """``crm preview``'s chart for the sample context: the sample's members drawn as a real
    chart (content id -> PNG), so the preview shows what a recipient sees."""
    from tasks.mail.kinds import get_kind

    context = get_kind(KIND).sample_context
    spec = chart_spec(
        context["members"],
        locale=locale,
        kind=context["kind"],
        scope_name=context["scope_name"],
        period=context["period"],
        thresholds=(80.0, 120.0),
    )
    return {} if spec is None else {context["chart"]["cid"]: render_chart(spec)}
