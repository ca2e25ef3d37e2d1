"""The demo company's organisation: regions (片区), stations (油站) and staff with a reporting line.

Reporting line (the escalation chain): account manager -> station (branch) manager -> region
manager -> deputy general manager -> general manager (top, no manager). The marketing admin and
the product/operations departments report to the general manager. A few account managers have
left (``active=False``, ``left_on`` set) and still own customers: reassigning them is the flows'
job. Two stations exercise reporting edge cases: one has no targets at all, and the newest one
opened this month, so it has targets but no customers and no activity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from crm_db.demo import vocab
from crm_db.demo.rng import stream
from crm_db.demo.timeline import Timeline, iso_day
from crm_db.enums import StaffRole

CUSTOMERS_PER_ACCOUNT_MANAGER = 2_500
MIN_ACCOUNT_MANAGERS_PER_BRANCH = 2
LEFT_STAFF_SHARE = 0.04

Row = tuple[Any, ...]

REGION_COLUMNS = ("id", "code", "name", "manager_id", "calendar_id")
BRANCH_COLUMNS = ("id", "code", "name", "region_id", "manager_id")
STAFF_COLUMNS = (
    "id",
    "external_id",
    "name",
    "email",
    "email_undeliverable",
    "locale",
    "role",
    "region_id",
    "branch_id",
    "manager_id",
    "active",
    "left_on",
    "max_contacts",
)


@dataclass(frozen=True)
class OrgPlan:
    """Rows to write and the arrays the generators index (position = id - 1 for branches)."""

    region_rows: list[Row]
    branch_rows: list[Row]
    staff_rows: list[Row]
    region_managers: dict[int, int]  # region id -> staff id
    branch_managers: npt.NDArray[np.int64]  # [branch] -> staff id
    branch_region: npt.NDArray[np.int64]  # [branch] -> region index (0-based)
    branch_weight: npt.NDArray[np.float64]  # [branch] -> share of customers
    am_offsets: npt.NDArray[np.int64]  # [branch] -> start in am_ids
    am_counts: npt.NDArray[np.int64]  # [branch] -> number of account managers
    am_ids: npt.NDArray[np.int64]  # account managers grouped by branch
    region_branch_offsets: npt.NDArray[np.int64]  # [region] -> start in region_branch_ids
    region_branch_counts: npt.NDArray[np.int64]
    region_branch_ids: npt.NDArray[np.int64]  # stations with customers, grouped by region
    staff_left_on: npt.NDArray[np.int64]  # [staff id] -> ordinal of leaving, or a far future
    staff_active: npt.NDArray[np.bool_]  # [staff id]
    executives: tuple[int, ...]
    marketing_admin: int
    no_target_branch: int  # branch id
    new_branch: int  # branch id, opened in the as-of month

    @property
    def branch_count(self) -> int:
        return len(self.branch_rows)

    @property
    def staff_count(self) -> int:
        return len(self.staff_rows)


class _StaffBook:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rows: list[Row] = []
        self.rng = rng

    def person(self) -> tuple[str, str]:
        surname, surname_py, _ = vocab.SURNAMES[int(self.rng.integers(len(vocab.SURNAMES)))]
        chars = self.rng.integers(len(vocab.GIVEN_CHARS), size=2)
        given = [vocab.GIVEN_CHARS[int(c)] for c in chars[: 1 + int(self.rng.random() < 0.7)]]
        name = surname + "".join(g[0] for g in given)
        return name, surname_py + "".join(g[1] for g in given)

    def add(
        self,
        role: StaffRole,
        *,
        name: str | None = None,
        mailbox: str | None = None,
        region_id: int | None = None,
        branch_id: int | None = None,
        manager_id: int | None = None,
    ) -> int:
        staff_id = len(self.rows) + 1
        if name is None:
            name, pinyin = self.person()
            mailbox = f"{pinyin}.{staff_id}"
        email = f"{mailbox}@{vocab.STAFF_EMAIL_DOMAIN}"
        self.rows.append(
            (
                staff_id,
                f"S{staff_id:05d}",
                name,
                email,
                False,
                "zh-CN",
                role.value,
                region_id,
                branch_id,
                manager_id,
                True,
                None,
                None,
            )
        )
        return staff_id

    def update(self, staff_id: int, **changes: Any) -> None:
        row = list(self.rows[staff_id - 1])
        for column, value in changes.items():
            row[STAFF_COLUMNS.index(column)] = value
        self.rows[staff_id - 1] = tuple(row)


def plan_organisation(seed: int, customers: int, timeline: Timeline) -> OrgPlan:
    rng = stream(seed, "organisation")
    book = _StaffBook(rng)
    general_manager = book.add(StaffRole.EXECUTIVE, name="赵总经理", mailbox="gm")
    deputy = book.add(
        StaffRole.EXECUTIVE, name="钱副总经理", mailbox="deputy.gm", manager_id=general_manager
    )
    marketing_admin = book.add(
        StaffRole.MARKETING_ADMIN,
        name="营销管理岗",
        mailbox="marketing",
        manager_id=general_manager,
    )
    for department, mailbox in vocab.PRODUCT_DEPARTMENTS:
        book.add(
            # 经营管理部 takes the operations side of the complaint feedback (四个不漏).
            (
                StaffRole.OPERATIONS_DEPARTMENT
                if mailbox == "operations"
                else StaffRole.PRODUCT_DEPARTMENT
            ),
            name=department,
            mailbox=mailbox,
            manager_id=general_manager,
        )

    region_rows: list[Row] = []
    branch_rows: list[Row] = []
    region_managers: dict[int, int] = {}
    branch_region: list[int] = []
    stems = iter(vocab.STATION_STEMS)
    for r, (code, name, stations) in enumerate(vocab.REGIONS):
        region_id = r + 1
        manager = book.add(StaffRole.REGION_MANAGER, region_id=region_id, manager_id=deputy)
        region_managers[region_id] = manager
        region_rows.append((region_id, code, name, manager, None))
        for s in range(stations):
            branch_id = len(branch_rows) + 1
            branch_rows.append(
                (branch_id, f"{code}-{s + 1:02d}", f"{next(stems)}加油站", region_id)
            )
            branch_region.append(r)

    n_branches = len(branch_rows)
    new_branch = n_branches  # the last station (新区加油站) opened this month
    no_target_branch = len([b for b in branch_region if b == 0])  # the last station of 东区
    weight = rng.lognormal(0.0, 0.5, n_branches)
    weight[new_branch - 1] = 0.0
    weight /= weight.sum()

    branch_managers = np.zeros(n_branches, dtype=np.int64)
    am_ids: list[int] = []
    am_offsets = np.zeros(n_branches, dtype=np.int64)
    am_counts = np.zeros(n_branches, dtype=np.int64)
    for b, (branch_id, code, name, region_id) in enumerate(branch_rows):
        region_id_of = region_managers[region_id]
        manager = book.add(
            StaffRole.BRANCH_MANAGER,
            region_id=region_id,
            branch_id=branch_id,
            manager_id=region_id_of,
        )
        branch_managers[b] = manager
        branch_rows[b] = (branch_id, code, name, region_id, manager)
        wanted = math.ceil(customers * weight[b] / CUSTOMERS_PER_ACCOUNT_MANAGER)
        count = 1 if weight[b] == 0 else max(MIN_ACCOUNT_MANAGERS_PER_BRANCH, wanted)
        am_offsets[b] = len(am_ids)
        am_counts[b] = count
        for _ in range(count):
            am_ids.append(
                book.add(
                    StaffRole.ACCOUNT_MANAGER,
                    region_id=region_id,
                    branch_id=branch_id,
                    manager_id=manager,
                )
            )

    # Leavers: at most one per station, from stations with customers, so every station keeps
    # an active account manager; they keep their customers (staff turnover loses customers).
    staffed = [b for b in range(n_branches) if weight[b] > 0]
    n_left = min(len(staffed), max(2, round(LEFT_STAFF_SHARE * len(am_ids))))
    far_future = timeline.as_of_ord + 100_000
    left_on = np.full(len(book.rows) + 1, far_future, dtype=np.int64)
    active = np.ones(len(book.rows) + 1, dtype=np.bool_)
    for b in sorted(rng.choice(staffed, size=n_left, replace=False).tolist()):
        leaver = int(am_ids[am_offsets[b] + int(rng.integers(am_counts[b]))])
        day = timeline.as_of - timedelta(days=int(rng.integers(3, 150)))
        book.update(leaver, active=False, left_on=iso_day(day.toordinal()))
        left_on[leaver] = day.toordinal()
        active[leaver] = False
    # One mailbox that bounces: delivery must mark it and the flows must still work around it.
    bouncing = int(am_ids[int(am_offsets[staffed[0]])])
    book.update(bouncing, email_undeliverable=True)

    region_branch: list[list[int]] = [[] for _ in vocab.REGIONS]
    for b in staffed:
        region_branch[branch_region[b]].append(b + 1)
    counts = np.array([len(ids) for ids in region_branch], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return OrgPlan(
        region_rows=region_rows,
        branch_rows=branch_rows,
        staff_rows=book.rows,
        region_managers=region_managers,
        branch_managers=branch_managers,
        branch_region=np.array(branch_region, dtype=np.int64),
        branch_weight=weight,
        am_offsets=am_offsets,
        am_counts=am_counts,
        am_ids=np.array(am_ids, dtype=np.int64),
        region_branch_offsets=offsets,
        region_branch_counts=counts,
        region_branch_ids=np.array([i for ids in region_branch for i in ids], dtype=np.int64),
        staff_left_on=left_on,
        staff_active=active,
        executives=(general_manager, deputy),
        marketing_admin=marketing_admin,
        no_target_branch=no_target_branch,
        new_branch=new_branch,
    )
