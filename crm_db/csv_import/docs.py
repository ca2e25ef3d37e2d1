"""Render the documented column lists as Markdown tables (README, ``crm import columns``)."""

from __future__ import annotations

from typing import Any

from crm_db.csv_import.spec import KindSpec


def column_table(spec: KindSpec[Any]) -> str:
    lines = ["| column | value | format |", "|---|---|---|"]
    for column in spec.columns:
        value = "required" if column.required else "optional"
        lines.append(f"| `{column.name}` | {value} | {column.description} |")
    return "\n".join(lines)
