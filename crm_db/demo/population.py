"""The few attributes of every customer that the later, company-wide generators need.

Complaints, surveys and targets are drawn after all customer chunks are written; they need
each customer's station, account manager and so on, but not the rows themselves. A handful of
small integer arrays keeps that at ~30 bytes per customer (30 MB for a million).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crm_db.demo.customers import CustomerChunk


@dataclass
class Population:
    branch: list[npt.NDArray[np.int64]] = field(default_factory=list)
    account_manager: list[npt.NDArray[np.int64]] = field(default_factory=list)
    card_type: list[npt.NDArray[np.int64]] = field(default_factory=list)
    first_card: list[npt.NDArray[np.int64]] = field(default_factory=list)
    reachable: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    pinned_a: list[npt.NDArray[np.bool_]] = field(default_factory=list)

    def add(self, chunk: CustomerChunk) -> None:
        self.branch.append(chunk.branch.astype(np.int32))
        self.account_manager.append(chunk.account_manager.astype(np.int32))
        self.card_type.append(chunk.card_type.astype(np.int8))
        self.first_card.append(chunk.first_card.astype(np.int32))
        self.reachable.append(chunk.has_email & ~chunk.survey_opt_out)
        self.pinned_a.append(chunk.pinned_a)

    def freeze(self) -> Customers:
        def cat(parts: list[npt.NDArray[np.generic]]) -> npt.NDArray[np.int64]:
            return np.concatenate(parts).astype(np.int64)

        return Customers(
            branch=cat(list(self.branch)),
            account_manager=cat(list(self.account_manager)),
            card_type=cat(list(self.card_type)),
            first_card=cat(list(self.first_card)),
            reachable=np.concatenate(self.reachable),
            pinned_a=np.concatenate(self.pinned_a),
        )


@dataclass(frozen=True)
class Customers:
    """Arrays indexed by customer id - 1."""

    branch: npt.NDArray[np.int64]
    account_manager: npt.NDArray[np.int64]
    card_type: npt.NDArray[np.int64]
    first_card: npt.NDArray[np.int64]
    reachable: npt.NDArray[np.bool_]  # a plausible email and no survey opt-out
    pinned_a: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.branch)
