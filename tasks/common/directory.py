"""The organisation directory: staff, branches and regions, loaded once per run in two reads
into a frozen, picklable value every flow shares (planning ships it to worker processes).

It answers: who is this staff member (role, branch, region, manager, active, a reachable
address, locale), their reporting chain, who owns a customer (``owner``: the account manager,
or the branch manager when the account manager has left - the revisits' rule), the branch and
region managers, senior management, and the organisation as the escalation ladder sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select

from crm_db.enums import StaffRole
from crm_db.models import Branch, Region, Staff
from tasks.mail.message import is_valid_recipient
from tasks.rules.escalation_ladder import Org, Person, Posts
from tasks.rules.organisation import Assignment, assign, management_chain


@dataclass(frozen=True, slots=True)
class StaffRecord:
    id: int
    name: str
    role: StaffRole
    branch_id: int | None
    region_id: int | None
    manager_id: int | None
    active: bool
    # An undeliverable or malformed address counts as none: reported, never queued.
    email: str | None
    locale: str
    phone: str | None = None  # shown to customers in the care emails a manager signs

    @property
    def reachable(self) -> bool:
        """Still here and can receive mail."""
        return self.active and self.email is not None


@dataclass(frozen=True, slots=True)
class BranchRecord:
    id: int
    region_id: int
    manager_id: int | None


@dataclass(frozen=True)
class Directory:
    """Plain dicts inside (picklable); treat them as read-only."""

    staff: dict[int, StaffRecord] = field(default_factory=dict)
    branches: dict[int, BranchRecord] = field(default_factory=dict)
    region_managers: dict[int, int | None] = field(default_factory=dict)  # region id -> staff id
    # Region code -> its name (片区 name): what reports and artifacts show people.
    region_names: dict[str, str] = field(default_factory=dict)

    def member(self, staff_id: int | None) -> StaffRecord | None:
        return self.staff.get(staff_id) if staff_id is not None else None

    def branch_manager(self, branch_id: int | None) -> int | None:
        branch = self.branches.get(branch_id) if branch_id is not None else None
        return branch.manager_id if branch is not None else None

    def region_of(self, branch_id: int | None) -> int | None:
        branch = self.branches.get(branch_id) if branch_id is not None else None
        return branch.region_id if branch is not None else None

    def region_manager(self, region_id: int | None) -> int | None:
        return self.region_managers.get(region_id) if region_id is not None else None

    @property
    def senior_management(self) -> tuple[int, ...]:
        """Active executives, by id (the top of every escalation)."""
        return tuple(
            sorted(s.id for s in self.staff.values() if s.role is StaffRole.EXECUTIVE and s.active)
        )

    def reporting_chain(self, staff_id: int) -> list[int]:
        """``staff_id``'s managers, nearest first, stopping at the top or a cycle."""
        return management_chain(staff_id, {s.id: s.manager_id for s in self.staff.values()})

    def owner(self, account_manager_id: int | None, branch_id: int | None) -> Assignment:
        """Who owns a customer with this account manager and branch: the account manager while
        active, else the branch manager (flagged for reassignment), else nobody (with why)."""
        return assign(
            account_manager=self.member(account_manager_id),
            branch_manager=self.member(self.branch_manager(branch_id)),
            has_branch=branch_id is not None,
        )

    def posts(self, assignee_id: int | None, branch_id: int | None) -> Posts:
        """An item's post holders for the escalation ladder."""
        return Posts(
            assignee_id=assignee_id,
            branch_manager_id=self.branch_manager(branch_id),
            region_manager_id=self.region_manager(self.region_of(branch_id)),
        )

    def org(self) -> Org:
        """The organisation as the escalation ladder sees it."""
        people = {
            s.id: Person(
                s.id, s.active, s.email is not None, manager_id=s.manager_id, role=s.role.value
            )
            for s in self.staff.values()
        }
        return Org(people, self.senior_management)

    def subset(self, staff_ids: Iterable[int]) -> dict[int, StaffRecord]:
        return {i: self.staff[i] for i in staff_ids if i in self.staff}


def load_directory(bind: Engine | Connection) -> Directory:
    """The whole directory: one read of the staff, one of regions with their branches."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return load_directory(conn)
    staff = {
        row.id: StaffRecord(
            id=row.id,
            name=row.name,
            role=StaffRole(row.role),
            branch_id=row.branch_id,
            region_id=row.region_id,
            manager_id=row.manager_id,
            active=bool(row.active),
            email=row.email
            if not row.email_undeliverable and is_valid_recipient(row.email, row.name)
            else None,
            locale=row.locale,
            phone=row.phone,
        )
        for row in bind.execute(
            select(
                Staff.id,
                Staff.name,
                Staff.role,
                Staff.branch_id,
                Staff.region_id,
                Staff.manager_id,
                Staff.active,
                Staff.email,
                Staff.email_undeliverable,
                Staff.locale,
                Staff.phone,
            )
        )
    }
    branches: dict[int, BranchRecord] = {}
    regions: dict[int, int | None] = {}
    names: dict[str, str] = {}
    rows = bind.execute(
        select(
            Region.id, Region.code, Region.name, Region.manager_id, Branch.id, Branch.manager_id
        ).outerjoin(Branch, Branch.region_id == Region.id)
    ).tuples()
    for region_id, code, name, region_manager, branch_id, branch_manager in rows:
        regions[region_id] = region_manager
        names[code] = name
        if branch_id is not None:
            branches[branch_id] = BranchRecord(branch_id, region_id, branch_manager)
    return Directory(staff, branches, regions, names)


__all__ = ["BranchRecord", "Directory", "StaffRecord", "load_directory"]
