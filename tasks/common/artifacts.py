"""Per-run summary tables published as Prefect artifacts under a stable key.

A stable key (``<flow>-summary``) makes the Prefect UI's Artifacts page show one entry per flow
with its history of versions, one per run, instead of an anonymous table per run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from prefect.artifacts import create_table_artifact

from crm_core.masking import mask_text

Cell = str | int | float | bool | None

_NOT_KEY_CHARS = re.compile(r"[^a-z0-9-]+")


def artifact_key(flow_name: str, kind: str = "summary") -> str:
    """``("Target Reconciliation", "summary")`` -> ``target-reconciliation-summary``.

    Prefect accepts only lowercase letters, digits and dashes in artifact keys.
    """
    key = _NOT_KEY_CHARS.sub("-", f"{flow_name}-{kind}".lower()).strip("-")
    return re.sub(r"-{2,}", "-", key)


def safe_rows(rows: Sequence[Mapping[str, Cell]]) -> list[dict[str, Cell]]:
    """Rows fit for an artifact: an email address slipped into a cell is masked.

    Summaries are built from counts and codes; this is the last guard, not the main one. Only
    cells with an ``@`` are masked, because the phone mask would also garble dates and times.
    """
    return [
        {
            column: mask_text(value) if isinstance(value, str) and "@" in value else value
            for column, value in row.items()
        }
        for row in rows
    ]


def publish_summary(key: str, rows: Sequence[Mapping[str, Cell]], description: str) -> str:
    """Publish ``rows`` as a table artifact of the current flow run; returns the artifact id.

    A plain call from the flow, not a task: it is one API request, and a task run around it
    would cost Prefect ~45 ms of CPU (flow process and API server) on the run's critical path."""
    if not key or _NOT_KEY_CHARS.search(key):
        raise ValueError(f"artifact key {key!r}: use artifact_key() (lowercase, digits, dashes)")
    artifact_id = create_table_artifact(table=safe_rows(rows), key=key, description=description)
    return str(artifact_id)
