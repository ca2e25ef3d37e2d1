"""Organisation rules every flow shares: who owns a customer's work, and management chains.

Pure functions over values (the organisation directory, ``tasks.common.directory``, feeds them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class SkipReason(StrEnum):
    NO_CLASS = "no_class"
    NO_BRANCH = "no_branch"
    NO_ASSIGNEE = "no_assignee"
    OPTED_OUT = "opted_out"
    NO_EMAIL = "no_email"
    CONTACT_CAP = "contact_cap"


class Member(Protocol):
    """A staff member as the assignment rule sees them (``tasks.common.directory.StaffRecord``)."""

    @property
    def id(self) -> int: ...

    @property
    def active(self) -> bool: ...


@dataclass(frozen=True)
class Assignment:
    assignee_id: int | None
    needs_reassignment: bool
    skip: SkipReason | None = None


def assign(
    *,
    account_manager: Member | None,
    branch_manager: Member | None,
    has_branch: bool,
) -> Assignment:
    """The account manager; if they left (or there is none), the branch manager, flagged for
    reassignment in the digest (staff turnover is the first cause of customer loss)."""
    if account_manager is not None and account_manager.active:
        return Assignment(account_manager.id, needs_reassignment=False)
    if not has_branch:
        return Assignment(None, needs_reassignment=True, skip=SkipReason.NO_BRANCH)
    if branch_manager is not None and branch_manager.active:
        return Assignment(branch_manager.id, needs_reassignment=True)
    return Assignment(None, needs_reassignment=True, skip=SkipReason.NO_ASSIGNEE)


def management_chain(
    start_id: int, managers: Mapping[int, int | None], limit: int = 10
) -> list[int]:
    """``start_id``'s managers, nearest first, stopping at the top, at a cycle (a data error the
    flow reports but must survive) or after ``limit`` steps."""
    chain: list[int] = []
    seen = {start_id}
    current = managers.get(start_id)
    while current is not None and current not in seen and len(chain) < limit:
        chain.append(current)
        seen.add(current)
        current = managers.get(current)
    return chain


def has_cycle(start_id: int, managers: Mapping[int, int | None], limit: int = 50) -> bool:
    seen = {start_id}
    current = managers.get(start_id)
    for _ in range(limit):
        if current is None:
            return False
        if current in seen:
            return True
        seen.add(current)
        current = managers.get(current)
    return True


def staff_in_cycles(managers: Mapping[int, int | None]) -> set[int]:
    """Staff whose management chain loops back on itself (reported as a data problem)."""
    return {staff_id for staff_id in managers if has_cycle(staff_id, managers)}
