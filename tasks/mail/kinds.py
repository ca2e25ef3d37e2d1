"""The catalogue of email kinds: who receives each one, which opt-out suppresses it, and a sample
context that documents (and tests) exactly which keys its templates need.

Contexts are stored as JSON in the outbox, so every value in them is JSON-native: dates are ISO
strings, money and percentages are numbers, absent values are ``None`` (the key is still present;
templates use ``StrictUndefined`` and a missing key is an error, never a blank).
URL values (``outcome_url``, ``unsubscribe_url``, ``feedback_url``) are built in code
(``tasks.mail.links``) and checked again at render time; customer-provided text never becomes a URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Audience = Literal["customer", "staff"]
Consent = Literal["marketing", "survey"]


class UnknownEmailKind(LookupError):
    """No email kind of that name (the message lists the known ones)."""


@dataclass(frozen=True, slots=True)
class EmailKind:
    name: str
    audience: Audience
    # Which customer opt-out flag suppresses this kind at send time (None: only unsubscribing does).
    consent: Consent | None
    sample_context: dict[str, Any] = field(repr=False)
    description: str = ""
    # Delivery signs a ``feedback_url`` (``/f/``, the customer's answer page) into the context.
    feedback_link: bool = False
    # Delivery signs the survey's one-click ``score_links`` (``/s/{token}?score=N``, from the
    # context's ``invitation_id``, ``expires_at`` and ``survey``: 0-10 for NPS, 1-5 for CSAT).
    survey_links: bool = False
    # ``module:function`` giving, for a locale, the inline images (content id -> PNG) of the
    # sample context: ``crm preview`` writes them beside the HTML and points ``cid:`` at them.
    preview_images: str | None = None

    @property
    def delivery_keys(self) -> frozenset[str]:
        """Context keys that delivery, not the flow, fills in at send time."""
        keys = {"unsubscribe_url"} if self.audience == "customer" else set()
        if self.feedback_link:
            keys.add("feedback_url")
        if self.survey_links:
            keys.add("score_links")
        return frozenset(keys)


_SAMPLE_OUTCOME = "https://crm.example.test/r/"

_TARGET_LEADER: dict[str, Any] = {
    "rank": 1,
    "name": "张伟",
    "region": "东区片区",
    "new_customers": 12,
    "first_recharge": 36000.0,
}

_TARGET_MEMBER: dict[str, Any] = {
    "name": "东区片区",
    "level": "region",
    "rank": 2,
    "cells": {
        "revenue": {
            "actual": 1250000.5,
            "target": 1500000.0,
            "expected": 1500000.0,
            "branch_targets": 1400000.0,
            "completion_pct": 83.3,
            "pace_pct": 83.3,
            "flag": None,
        },
        "volume": {
            "actual": 152000.25,
            "target": 200000.0,
            "expected": 200000.0,
            "branch_targets": 200000.0,
            "completion_pct": 76.0,
            "pace_pct": 76.0,
            "flag": "behind",
        },
        "new_customers": {
            "actual": 12,
            "target": None,
            "expected": None,
            "branch_targets": None,
            "completion_pct": None,
            "pace_pct": None,
            "flag": None,
        },
        "first_recharge": {
            "actual": 36000.0,
            "target": 25000.0,
            "expected": 25000.0,
            "branch_targets": None,
            "completion_pct": 144.0,
            "pace_pct": 144.0,
            "flag": "star",
        },
    },
    "flags": [
        {"flag": "behind", "metric": "volume_ml"},
        {"flag": "star", "metric": "first_recharge_fen"},
    ],
    "without_target": ["new_customers_company", "new_customers_fleet", "new_customers_personal"],
}

_DIGEST_ITEMS: list[dict[str, Any]] = [
    {
        "customer_name": "田中 太郎",
        "customer_class": "A",
        "phone": "138****5678",
        "channel": "visit",
        "due_date": "2026-02-20",
        "overdue_days": 10,
        "last_contact_date": "2026-01-21",
        "last_contact_outcome": "issue_raised",
        "open_complaints": 1,
        "last_survey_score": 6,
        "trend_90d_pct": -23.5,
        "outcome_url": _SAMPLE_OUTCOME + "sample-token-1",
        "needs_reassignment": False,
    },
    {
        "customer_name": "华东物流车队",
        "customer_class": "B",
        "phone": "*******1234",
        "channel": "phone",
        "due_date": "2026-03-02",
        "overdue_days": 0,
        "last_contact_date": "2025-12-02",
        "last_contact_outcome": "completed",
        "open_complaints": 0,
        "last_survey_score": 9,
        "trend_90d_pct": 12.0,
        "outcome_url": _SAMPLE_OUTCOME + "sample-token-2",
        "needs_reassignment": True,
    },
    {
        "customer_name": "Li Na",
        "customer_class": "C",
        "phone": None,
        "channel": "email",
        "due_date": "2026-03-02",
        "overdue_days": 0,
        "last_contact_date": None,
        "last_contact_outcome": None,
        "open_complaints": 0,
        "last_survey_score": None,
        "trend_90d_pct": None,
        "outcome_url": _SAMPLE_OUTCOME + "sample-token-3",
        "needs_reassignment": False,
    },
]

_ESCALATION_ITEMS: list[dict[str, Any]] = [
    {
        "customer_name": "田中 太郎",
        "customer_class": "A",
        "account_manager_name": "王小明",
        "channel": "visit",
        "due_date": "2026-02-20",
        "overdue_days": 10,
        "last_contact_date": "2026-01-21",
        "open_complaints": 1,
        "outcome_url": _SAMPLE_OUTCOME + "sample-token-1",
        "needs_reassignment": False,
    },
    {
        "customer_name": "华东物流车队",
        "customer_class": "B",
        "account_manager_name": "赵强",
        "channel": "phone",
        "due_date": "2026-02-12",
        "overdue_days": 18,
        "last_contact_date": None,
        "open_complaints": 0,
        "outcome_url": _SAMPLE_OUTCOME + "sample-token-2",
        "needs_reassignment": True,
    },
]

_COMPLAINT_ESCALATION_ITEMS: list[dict[str, Any]] = [
    {
        "reference": "TS-2026-000123",
        "customer_name": "田中 太郎",
        "customer_class": "A",
        "phone": "138****5678",
        "category": "充值到账",
        "severity": "high",
        "status": "acknowledged",
        "target": "resolution",
        "tier": "branch",
        "due_at": "2026-11-23 17:00",
        "late_minutes": 95,
        "assignee_name": "王小明",
        "reason": None,
    },
    {
        "reference": "TS-2026-000456",
        "customer_name": "华东物流车队",
        "customer_class": "B",
        "phone": None,
        "category": "油品质量",
        "severity": "normal",
        "status": "new",
        "target": "first_response",
        "tier": "warning",
        "due_at": "2026-11-24 09:30",
        "late_minutes": 0,
        "assignee_name": None,
        "reason": "staff 17 skipped (inactive or unreachable)",
    },
]

_COMPLAINT_LIST_ITEMS: list[dict[str, Any]] = [
    {
        "reference": "TS-2026-000123",
        "customer_name": "田中 太郎",
        "customer_class": "A",
        "phone": "138****5678",
        "category": "充值到账",
        "severity": "high",
        "received_at": "2026-11-23 10:05",
        "resolved_at": "2026-11-24 16:40",
        "first_response_due_at": "2026-11-24 10:05",
    },
    {
        "reference": "TS-2026-000456",
        "customer_name": "Li Na",
        "customer_class": None,
        "phone": None,
        "category": "油品质量",
        "severity": "normal",
        "received_at": "2026-11-22 18:30",
        "resolved_at": None,
        "first_response_due_at": None,
    },
]

_SAMPLE_SURVEY = "https://crm.example.test/s/sample-token?score="


def _sample_score_links(low: int, high: int) -> list[dict[str, Any]]:
    return [{"score": n, "url": f"{_SAMPLE_SURVEY}{n}"} for n in range(low, high + 1)]


_SURVEY_SAMPLE: dict[str, Any] = {
    "customer_name": "田中 太郎",
    "survey": "nps",
    "invitation_id": 123,
    "expires_at": "2026-12-07T16:00:00+00:00",
    "expires_on": "2026-12-07",
    "complaint_reference": None,
    "score_links": _sample_score_links(0, 10),
    "unsubscribe_url": "https://crm.example.test/u/sample-token",
}
_CARE_ALERT_ITEMS: list[dict[str, Any]] = [
    {
        "customer_name": "田中 太郎",
        "customer_class": "A",
        "phone": "*******5678",
        "kind": "detractor",
        "score": 3,
        "comment": "加油站排队太久，服务态度也不好",
        "recent_yuan": None,
        "previous_yuan": None,
        "revisit_due": "2026-11-25",
        "revisit_channel": "visit",
        "last_contact_date": "2026-10-21",
        "last_contact_outcome": "completed",
        "open_complaints": 0,
        "last_survey_score": 3,
        "trend_90d_pct": -12.5,
    },
    {
        "customer_name": "华东物流车队",
        "customer_class": "B",
        "phone": None,
        "kind": "churn",
        "score": None,
        "comment": None,
        "recent_yuan": 1200.5,
        "previous_yuan": 8800.0,
        "revisit_due": None,
        "revisit_channel": None,
        "last_contact_date": None,
        "last_contact_outcome": None,
        "open_complaints": 0,
        "last_survey_score": None,
        "trend_90d_pct": -86.4,
    },
]


def _score_line(name: str, nps: float | None, before: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "nps": nps,
        "nps_previous": before,
        "nps_change": None if nps is None or before is None else round(nps - before, 1),
        "csat": 80.0,
        "csat_previous": 75.0,
        "csat_change": 5.0,
        "response_rate": 34.5,
        "response_rate_previous": 31.0,
        "responses": 120,
    }


_SURVEY_REPORT_SAMPLE: dict[str, Any] = {
    "recipient_name": "市场部 周主管",
    "month": "2026-11",
    "view": "company",
    "scope_name": "",
    "period": "2026Q4",
    "previous_period": "2026Q3",
    "company": _score_line("", 32.5, 28.0),
    "regions": [_score_line("东区片区", 35.0, 30.0), _score_line("西区片区", None, 12.5)],
    "branches": [_score_line("西湖一号加油站", 40.0, 38.0)],
    "account_managers": [_score_line("王小明", 22.2, None)],
    "classes": [_score_line("A", 45.0, 41.0)],
    "loop": [
        {
            "name": "",
            "alerts": 18,
            "followed_up_pct": 83.3,
            "followed_up_pct_previous": 70.0,
            "told_pct": 61.1,
            "told_pct_previous": 50.0,
            "next_answers": 5,
            "next_nps": 20.0,
            "next_csat": None,
            "recovered_pct": 60.0,
        }
    ],
    "ratings": {
        "product": {"answers": 96, "average": 4.12, "satisfied_pct": 78.1, "average_previous": 4.0},
        "service": {
            "answers": 90,
            "average": 3.87,
            "satisfied_pct": 70.0,
            "average_previous": None,
        },
    },
    "suggestions": [
        {
            "on": "2026-11-20",
            "survey": "nps",
            "score": 4,
            "product_rating": 3,
            "service_rating": 2,
            "region": "东区片区",
            "text": "高峰时段排队太久，希望增加收银台。",
        }
    ],
    "suggestion_count": 37,
}

KINDS: dict[str, EmailKind] = {
    kind.name: kind
    for kind in (
        EmailKind(
            name="revisit_digest",
            audience="staff",
            consent=None,
            description="An account manager's daily list of due and overdue revisits.",
            sample_context={
                "manager_name": "王小明",
                "date": "2026-03-02",
                "items": _DIGEST_ITEMS,
                "total_count": 201,
                "overdue_count": 120,
                "more_count": 200,
                "list_url": "https://crm.example.test/m/sample-token",
                # Customers handed to this manager over the last day (tasks/common/owners.py).
                "reassigned_count": 23,
                "reassigned": [
                    {
                        "customer_id": 7,
                        "customer_name": "李 四",
                        "from_name": "赵强",
                        "source": "leaver",
                    }
                ],
                "deferred": 12,
                "deferred_until": "2026-03-05",
            },
        ),
        EmailKind(
            name="revisit_care",
            audience="customer",
            consent="marketing",
            description=(
                "Thanks the customer and asks whether last time's issue was solved, or (no"
                " issue) whether they would like a call."
            ),
            feedback_link=True,
            sample_context={
                "customer_name": "田中 太郎",
                "manager_name": "王小明",
                "manager_phone": "0571-8888 6666",
                "last_contact_date": "2026-01-21",
                "last_issue": "加油卡充值",
                "feedback_url": "https://crm.example.test/f/sample-token",
                "unsubscribe_url": "https://crm.example.test/u/sample-token",
            },
        ),
        EmailKind(
            name="survey_invitation",
            audience="customer",
            consent="survey",
            description="A satisfaction survey (满意度调查): the periodic NPS question with "
            "eleven one-click score links 0-10, or after a resolved complaint the CSAT "
            "question with five, 1-5; the page the link opens records the answer.",
            survey_links=True,
            sample_context=_SURVEY_SAMPLE,
        ),
        EmailKind(
            name="survey_reminder",
            audience="customer",
            consent="survey",
            description="The one reminder to a customer who has not answered a survey "
            "invitation after N days, with the same score links (CSAT sample).",
            survey_links=True,
            sample_context={
                **_SURVEY_SAMPLE,
                "survey": "csat",
                "complaint_reference": "CP20260000123",
                "score_links": _sample_score_links(1, 5),
            },
        ),
        EmailKind(
            name="revisit_escalation",
            audience="staff",
            consent=None,
            description="Overdue revisits escalated to a branch or region manager.",
            sample_context={
                "recipient_name": "陈经理",
                "level": "branch",
                "scope_name": "西湖油站",
                "date": "2026-03-02",
                "overdue_after_days": 7,
                "items": _ESCALATION_ITEMS,
            },
        ),
        EmailKind(
            name="care_alert",
            audience="staff",
            consent=None,
            description="Care alerts (a detractor, a low CSAT or rating, a churn warning) to "
            "the account manager (and for A class the region manager), one email per "
            "recipient per run, with the urgent revisit each opened.",
            sample_context={
                "recipient_name": "王小明",
                "date": "2026-11-23",
                "working_days": 2,
                "total_count": 52,
                "items": _CARE_ALERT_ITEMS,
                "more_count": 50,
            },
        ),
        EmailKind(
            name="care_follow_up_result",
            audience="customer",
            consent="survey",
            description="The 'here is what we did' email (反馈改进结果给客户) when the urgent "
            "revisit of a low survey answer is completed: the summary written for the customer, "
            "or a thank-you line.",
            sample_context={
                "customer_name": "田中 太郎",
                "answered_on": "2026-11-23",
                "summary": "已为您所在油站增加高峰时段收银员，并对服务人员进行了培训。",
                "manager_name": "王小明",
                "manager_phone": "0571-8888 6666",
                "unsubscribe_url": "https://crm.example.test/u/sample-token",
            },
        ),
        EmailKind(
            name="complaint_escalation",
            audience="staff",
            consent=None,
            description="Complaints whose SLA tier (warning, breach, branch, region, senior "
            "management) fell due, one email per recipient per check.",
            sample_context={
                "recipient_name": "陈经理",
                "checked_at": "2026-11-23 17:15",
                "items": _COMPLAINT_ESCALATION_ITEMS,
                # Capped at complaint.email_max_items complaints; the rest counted.
                "total_count": len({i["reference"] for i in _COMPLAINT_ESCALATION_ITEMS}) + 3,
                "more_count": 3,
            },
        ),
        EmailKind(
            name="complaint_assigned",
            audience="staff",
            consent=None,
            description="Unassigned complaints the check assigned by branch (四个不漏: every "
            "complaint handled), one email per assignee per check.",
            sample_context={
                "recipient_name": "王小明",
                "checked_at": "2026-11-23 17:15",
                "items": _COMPLAINT_LIST_ITEMS,
                "total_count": len(_COMPLAINT_LIST_ITEMS),
                "more_count": 0,
            },
        ),
        EmailKind(
            name="complaint_verify_reminder",
            audience="staff",
            consent=None,
            description="Complaints resolved but not verified (复查) after N working days, to "
            "the branch manager, once per complaint.",
            sample_context={
                "recipient_name": "陈经理",
                "checked_at": "2026-11-26 09:15",
                "working_days": 2,
                "items": _COMPLAINT_LIST_ITEMS,
                "total_count": len(_COMPLAINT_LIST_ITEMS) + 1,
                "more_count": 1,
            },
        ),
        EmailKind(
            name="complaint_receipt",
            audience="customer",
            consent=None,  # transactional: only unsubscribing stops it
            description="The receipt of a complaint at intake: reference number, owner and "
            "the promised reply time (first-response due, in the branch's time zone).",
            sample_context={
                "customer_name": "田中 太郎",
                "reference": "CP20260000123",
                "title": "加油卡充值未到账",
                "received_at": "2026-11-23 10:05 (UTC+08:00)",
                "owner_name": "王小明",
                "reply_by": "2026-11-24 10:05 (UTC+08:00)",
                "unsubscribe_url": "https://crm.example.test/u/sample-token",
            },
        ),
        EmailKind(
            name="complaint_intake_alert",
            audience="staff",
            consent=None,
            description="A critical complaint, or an A-class customer's high one, to senior "
            "management at intake (高层管理人员亲自受理), one email per executive.",
            sample_context={
                "recipient_name": "刘总",
                "reference": "CP20260000123",
                "customer_name": "华东物流车队",
                "customer_class": "A",
                "severity": "critical",
                "category": "油品质量",
                "title": "加油后车辆故障",
                "received_at": "2026-11-23 10:05 (UTC+08:00)",
                "owner_name": "王小明",
                "first_response_due_at": "2026-11-23 14:05 (UTC+08:00)",
                "resolution_due_at": "2026-11-24 14:05 (UTC+08:00)",
            },
        ),
        EmailKind(
            name="complaint_feedback_report",
            audience="staff",
            consent=None,
            description="The monthly complaint feedback report (四个不漏): the three controls "
            "per 100,000 customers against the goal of under 1, SLA compliance, counts and "
            "trend by category and product, root causes and the slowest cases; to the product "
            "and operations departments (their categories) and each region manager (their "
            "region).",
            sample_context={
                "recipient_name": "产品部 李工",
                "month": "2026-11",
                "scope_kind": "department",
                "scope_name": "product_department",
                "controls": {
                    "customers": 250000,
                    "received": 3,
                    "omitted": 1,
                    "reopened": 0,
                    "resolved": 2,
                    "resolved_on_time": 1,
                    "complaint_rate": 1.2,
                    "omission_rate": 0.4,
                    "dissatisfaction_rate": 0.0,
                    "sla_compliance_pct": 50.0,
                    "over_goal": ["complaint_rate"],
                    "goal": 1.0,
                },
                "categories": [
                    {
                        "category": "油品质量",
                        "product": "92#汽油",
                        "count": 2,
                        "previous": 1,
                        "trend_pct": 100.0,
                    },
                    {
                        "category": "充值到账",
                        "product": None,
                        "count": 1,
                        "previous": 0,
                        "trend_pct": None,
                    },
                ],
                "root_causes": [{"root_cause": "批次油品含水超标", "count": 1}],
                "slowest": [
                    {
                        "reference": "CP20260000123",
                        "category": "油品质量",
                        "received_at": "2026-11-03 10:05 (UTC+08:00)",
                        "resolved_at": "2026-11-06 16:40 (UTC+08:00)",
                        "hours": 78.6,
                    }
                ],
            },
        ),
        EmailKind(
            name="survey_report",
            audience="staff",
            consent=None,
            description="The monthly survey report (满意度调查): NPS, CSAT and response rate of "
            "the quarter holding the month against the quarter before, and the detractor loop "
            "(followed up in 2 working days, told the result, next score); each region manager "
            "their region only, the marketing admin and executives the company (per region, "
            "branch, account manager, class), the product and operations departments the "
            "month's product and service ratings and suggestions. The sample holds every "
            "section; each recipient's email holds only their view's.",
            sample_context=_SURVEY_REPORT_SAMPLE,
        ),
        EmailKind(
            name="target_report",
            audience="staff",
            consent=None,
            description="The target reconciliation report (每月目标完成情况 / weekly progress): "
            "revenue, volume, new customers and first recharges of new cards against targets, "
            "with completion, pace and flags; each region manager gets their region and its "
            "stations only, the marketing admin and executives the company and its regions.",
            sample_context={
                "recipient_name": "东区片区 王经理",
                "kind": "monthly",
                "period": "2026-12",
                "month": "2026-12",
                "start": "2026-12-01",
                "through": "2026-12-31",
                "target_version": 3,
                "revision": 1,
                "scope_kind": "region",
                "scope_name": "东区片区",
                "members": [
                    _TARGET_MEMBER,
                    {**_TARGET_MEMBER, "name": "一号加油站", "level": "branch"},
                ],
                "flag_counts": {
                    "behind": 1,
                    "star": 0,
                    "no_activity": 0,
                    "no_target": 2,
                    "target_mismatch": 0,
                },
                "chart": {
                    "cid": "targets-chart-EAST@crm-flows",
                    "alt": "东区片区 2026-12 目标完成率",
                },
                "leaderboard": {
                    "entries": [
                        {**_TARGET_LEADER, "rank": 1},
                        {**_TARGET_LEADER, "rank": 2, "name": "李娜", "new_customers": 9},
                        {**_TARGET_LEADER, "rank": 2, "name": "王强", "new_customers": 9},
                    ],
                    "total": 25,
                },
                "award": {
                    "quarter": "2026Q4",
                    "start": "2026-10-01",
                    "end": "2026-12-31",
                    "top_pct": 10,
                    "ranked": 180,
                    "places": 18,
                    "entries": [
                        {**_TARGET_LEADER, "rank": 3, "active": True},
                        {**_TARGET_LEADER, "rank": 17, "name": "赵磊", "active": False},
                    ],
                    "total": 2,
                },
            },
            preview_images="tasks.targets.reports:sample_images",
        ),
        EmailKind(
            name="weekly_form",
            audience="staff",
            consent=None,
            description="Sunday's weekly progress form (周反馈表) link to each region manager: "
            "their region's form on crm web, pre-filled with each station's progress against "
            "the pro-rated target, open until the end of Sunday.",
            sample_context={
                "recipient_name": "东区片区 王经理",
                "region_name": "东区片区",
                "week": "2026-W49",
                "start": "2026-12-01",
                "through": "2026-12-05",
                "deadline": "2026-12-06",
                "form_url": "https://crm.example.test/w/sample-token",
            },
        ),
        EmailKind(
            name="weekly_rollup",
            audience="staff",
            consent=None,
            description="Monday's roll-up of every region's weekly progress form to the "
            "marketing admin: each region's pace and what its manager filed, naming the "
            "regions whose form was not submitted.",
            sample_context={
                "recipient_name": "营销管理岗 李敏",
                "week": "2026-W49",
                "start": "2026-12-01",
                "through": "2026-12-05",
                "region_count": 2,
                "submitted_count": 1,
                "total_prospects": 12,
                "missing": [{"region_name": "西区片区", "manager_name": "赵经理"}],
                "regions": [
                    {
                        "region_name": "东区片区",
                        "manager_name": "王经理",
                        "submitted": True,
                        "submitted_by": "王经理",
                        "submitted_at": "2026-12-06 18:20",
                        "prospects_contacted": 12,
                        "obstacles": "两家车队客户比价，\n希望争取单位卡优惠。",
                        "next_week_plan": "拜访物流园区三家车队。",
                        "revenue_pace_pct": 83.3,
                        "volume_pace_pct": 76.0,
                        "new_customers": 5,
                    },
                    {
                        "region_name": "西区片区",
                        "manager_name": "赵经理",
                        "submitted": False,
                        "submitted_by": None,
                        "submitted_at": None,
                        "prospects_contacted": None,
                        "obstacles": None,
                        "next_week_plan": None,
                        "revenue_pace_pct": None,
                        "volume_pace_pct": 104.2,
                        "new_customers": 0,
                    },
                ],
            },
        ),
        EmailKind(
            name="ops_failure_alert",
            audience="staff",
            consent=None,
            description="A flow run that failed or crashed, to the operators (CRM_OPERATOR_EMAILS) "
            "by the notify_failure flow: flow, deployment, state and reason, the parameters "
            "masked (no personal data) and the run's page in the Prefect UI.",
            sample_context={
                "flow_name": "revisits",
                "run_name": "crimson-otter",
                "deployment_name": "revisits-daily",
                "state_name": "Failed",
                "state_message": "Flow run encountered an exception: OperationalError: could "
                "not connect to server",
                "started_at": "2026-11-23T06:30:02+08:00",
                "parameters": [
                    {"name": "as_of", "value": "2026-11-23"},
                    {"name": "dry_run", "value": "false"},
                    {"name": "region_codes", "value": "[EAST, WEST]"},
                ],
                "run_url": "http://127.0.0.1:4200/runs/flow-run/0b6f3c1e-6f7a-4d2b-9a43-1c2d3e4f5a6b",
            },
        ),
    )
}


def get_kind(name: str) -> EmailKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownEmailKind(
            f"unknown email kind {name!r}; known: {', '.join(sorted(KINDS))}"
        ) from None
